package agent_test

import (
	"context"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

// hostileWASM is internal/plugin/wasmrt's test guest, a notifier whose
// behaviour the svid block's name selects ("loop", "oom", "panic", ...),
// compiled once per test binary.
var hostileWASM = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "agent-wasm-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "notifier.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../internal/plugin/wasmrt/testdata/guests/notifier")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test guest: %v\n%s", err, b)
	}
	return out, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if p, err := hostileWASM(); err == nil && p != "" {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

// TestHostileWASMNotifier: a WASM notifier that spins, exhausts its memory
// or panics fails its own calls only. The other notifier of the same
// rotation still runs, the agent stays up, and the next rotation is
// delivered to both again.
func TestHostileWASMNotifier(t *testing.T) {
	path, err := hostileWASM()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := wasmrt.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir() // shared: the module is compiled once, then cached
	// Warm the compile cache, so that the subtests' deadlines do not
	// include a cold compile (seconds under -race).
	warm, err := wasmrt.Open(context.Background(), wasmrt.Config{Path: path, SHA256: sum, Kind: hostapi.KindNotifier,
		Name: "warm", CacheDir: filepath.Join(stateDir, "wasm-cache"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	_ = warm.Close()
	tests := []struct {
		behaviour string
		limits    config.Limits
		wantLog   string // in the notifier's failure record; empty: no failure
	}{
		{behaviour: "ok", limits: config.Limits{Timeout: 2 * time.Second}},
		{behaviour: "loop", limits: config.Limits{Timeout: 2 * time.Second}, wantLog: "code = DeadlineExceeded"},
		{behaviour: "oom", limits: config.Limits{Timeout: 2 * time.Second, MemoryBytes: 16 << 20}, wantLog: "code = ResourceExhausted"},
		{behaviour: "panic", limits: config.Limits{Timeout: 2 * time.Second}, wantLog: "code = Internal"},
	}
	for _, tt := range tests {
		t.Run(tt.behaviour, func(t *testing.T) {
			ca := newTestCA(t, "example.org")
			iss := &pullIssuer{t: t, ca: ca, ttl: 3 * time.Second}
			w, rec := newRecWriter(), newRecNotifier()
			ext := &config.External{
				Name: "hostile", Kind: hostapi.KindNotifier, Runtime: config.RuntimeWASM,
				Path: path, SHA256: sum, ConfigJSON: []byte(`{}`),
				Limits: tt.limits,
			}
			s := svidCfg("fake-pull", w,
				config.Notifier{Plugin: config.Plugin{Name: "hostile", Type: "hostile", External: ext}, On: hostapi.ChangedX509, Timeout: 5 * time.Second},
				notifierCfg(rec, hostapi.ChangedX509))
			s.Name = tt.behaviour
			cfg := &config.Config{
				DaemonMode: true, StateDir: stateDir,
				Issuers: []config.Plugin{plugin("fake-pull", iss)},
				SVIDs:   []config.SVID{s},
			}
			logs := &testkit.Buffer{}
			a := agent.New(cfg, agent.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
				agent.WithRetry(10*time.Millisecond, 50*time.Millisecond))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()

			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("agent log:\n%s", logs)
				}
			})
			var first *hostapi.RotationEvent
			select { // loading the plugin is part of this wait: generous
			case first = <-rec.events:
			case err := <-done:
				cancel()
				t.Fatalf("Run returned early: %v", err)
			case <-time.After(90 * time.Second):
				cancel()
				<-done
				t.Fatal("timed out waiting for the other notifier's first notification")
			}
			second := recv(t, rec.events, "the other notifier's notification of the next rotation")
			if !first.Initial || second.Initial || first.X509[0].Serial == second.X509[0].Serial {
				t.Errorf("events %+v then %+v: want the initial one, then a rotation", first, second)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			out := logs.String()
			// Failures of the hostile plugin, but for the call the
			// shutdown cancelled.
			var failures []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "notifying failed") && strings.Contains(l, "plugin=hostile") && !strings.Contains(l, "code = Canceled") {
					failures = append(failures, l)
				}
			}
			failed := len(failures) > 0
			if tt.wantLog == "" {
				if failed {
					t.Errorf("a well-behaved WASM notifier failed:\n%s", out)
				}
				if !strings.Contains(out, "plugin loaded") {
					t.Errorf("no plugin loaded record:\n%s", out)
				}
				return
			}
			if !failed || !strings.Contains(failures[0], tt.wantLog) {
				t.Errorf("want a notifier failure of plugin hostile with %q in the log:\n%s", tt.wantLog, out)
			}
			if fi, err := os.Stat(stateDir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("state dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
			}
		})
	}
}

// TestExternalLoadFailure: a plugin that cannot load (a checksum
// mismatch) makes Run return an error naming it.
func TestExternalLoadFailure(t *testing.T) {
	path, err := hostileWASM()
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "example.org")
	ext := &config.External{Name: "pinned", Kind: hostapi.KindNotifier, Runtime: config.RuntimeWASM,
		Path: path, SHA256: strings.Repeat("0", 64), ConfigJSON: []byte(`{}`)}
	s := svidCfg("fake-pull", newRecWriter(), config.Notifier{Plugin: config.Plugin{Name: "pinned", Type: "pinned", External: ext}})
	cfg := &config.Config{DaemonMode: true, StateDir: t.TempDir(),
		Issuers: []config.Plugin{plugin("fake-pull", &pullIssuer{t: t, ca: ca, ttl: time.Minute})}, SVIDs: []config.SVID{s}}
	err = agent.New(cfg).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `plugin "pinned"`) || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("Run = %v, want a sha256 mismatch naming the plugin", err)
	}
}

// TestCeilingsMatch: the config loader rejects limits above the same
// ceilings the WASM runtime enforces.
func TestCeilingsMatch(t *testing.T) {
	if config.MaxWASMStartTimeout != wasmrt.MaxStartTimeout {
		t.Errorf("config's WASM start_timeout ceiling %s, wasmrt's %s", config.MaxWASMStartTimeout, wasmrt.MaxStartTimeout)
	}
	if config.MaxPluginMemory != wasmrt.MaxMemoryBytes || config.MaxPluginReply != wasmrt.MaxReplyBytes {
		t.Errorf("config ceilings %d/%d, wasmrt %d/%d", config.MaxPluginMemory, config.MaxPluginReply, wasmrt.MaxMemoryBytes, wasmrt.MaxReplyBytes)
	}
	for _, k := range []hostapi.Kind{hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier} {
		if config.MaxPluginTimeout(k) != wasmrt.MaxCallTimeout(k) {
			t.Errorf("%s timeout ceiling: config %s, wasmrt %s", k, config.MaxPluginTimeout(k), wasmrt.MaxCallTimeout(k))
		}
	}
}
