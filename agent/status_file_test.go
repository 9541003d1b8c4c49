package agent_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

// TestStatusShowsPluginFileChanged: a pinned WASM plugin whose file on
// disk is replaced after it was loaded is shown in the status with the
// file's sha256 beside the pinned one; a removed file is shown too.
func TestStatusShowsPluginFileChanged(t *testing.T) {
	built, err := hostileWASM()
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "notifier.wasm")
	if err := os.WriteFile(path, code, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := wasmrt.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "example.org")
	w, rec := newRecWriter(), newRecNotifier()
	ext := &config.External{Name: "pinned", Kind: hostapi.KindNotifier, Runtime: config.RuntimeWASM, Path: path, SHA256: sum, ConfigJSON: []byte(`{}`)}
	s := svidCfg("fake-pull", w,
		config.Notifier{Plugin: config.Plugin{Name: "pinned", Type: "pinned", External: ext}, On: hostapi.ChangedX509, Timeout: 30 * time.Second},
		notifierCfg(rec, hostapi.ChangedX509))
	s.Name = "ok" // the test guest's behaviour
	cfg := &config.Config{
		DaemonMode: true, StateDir: filepath.Join(dir, "state"),
		Issuers: []config.Plugin{plugin("fake-pull", &pullIssuer{t: t, ca: ca, ttl: time.Hour})},
		SVIDs:   []config.SVID{s},
	}
	a := agent.New(cfg, agent.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select { // the plugin is loaded before the first delivery
	case <-rec.events:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("no delivery")
	}

	pinned := func() agent.PluginStatus {
		t.Helper()
		for _, p := range a.Status().Plugins {
			if p.Name == "pinned" {
				return p
			}
		}
		t.Fatal("no status of plugin \"pinned\"")
		return agent.PluginStatus{}
	}
	if p := pinned(); p.SHA256 != sum || p.FileSHA256 != "" || p.FileError != "" {
		t.Errorf("before any change: %+v, want sha256 %s and no file change", p, sum)
	}

	// Replaced in place: same size, new bytes.
	code[len(code)-1] ^= 0xff
	if err := os.WriteFile(path, code, 0o644); err != nil {
		t.Fatal(err)
	}
	now, err := wasmrt.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p := pinned(); p.SHA256 != sum || p.FileSHA256 != now {
		t.Errorf("after the file changed: sha256 %q, file_sha256 %q; want %s (loaded) and %s (on disk)", p.SHA256, p.FileSHA256, sum, now)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if p := pinned(); p.FileError == "" || p.FileSHA256 != "" {
		t.Errorf("after the file was removed: %+v, want a file error", p)
	}
}
