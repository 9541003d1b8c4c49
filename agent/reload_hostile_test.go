package agent_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/registry"
)

// TestReloadHostileFile saves configuration files that used to crash the
// agent (a fatal stack overflow in the HCL parser) or that are too large
// into the watched directory of a running agent: each reload is refused
// and reported, and the running configuration keeps serving.
func TestReloadHostileFile(t *testing.T) {
	dir := t.TempDir()
	base := fmt.Sprintf(`
state_dir = %q
issuer "dev" {
  trust_domain = "example.org"
  ttl          = "1h"
}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = %q
  }
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "web"))
	path := filepath.Join(dir, "agent.hcl")
	writeFile(t, path, base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(config.FormatError(err, nil))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(cfg, agent.WithHealthListener(ln), agent.WithConfigPath(path))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{a: a, cancel: cancel, done: make(chan error, 1), url: "http://" + ln.Addr().String()}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	h.waitReady(t, 200)

	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "deep parentheses", src: base + "\nfetch_timeout = " + strings.Repeat("(", 500_000) + `"1s"` + strings.Repeat(")", 500_000) + "\n", want: "nested too deeply"},
		{name: "deep tuples", src: "x = " + strings.Repeat("[", 1_000_000), want: "nested too deeply"},
		{name: "too large", src: base + "#" + strings.Repeat("x", 2<<20) + "\n", want: "too large"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, path, tt.src)
			rs := waitReloads(t, a, uint64(i+1))
			if rs.Result != agent.ReloadInvalid || !strings.Contains(rs.Error, tt.want) || !strings.Contains(rs.Error, path+":") {
				t.Fatalf("ReloadStatus = %+v, want %s with %q at %s:line:col", rs, agent.ReloadInvalid, tt.want, path)
			}
			h.runErr(t)
			_, st := h.get(t, "/status")
			if st.Reload == nil || !strings.Contains(st.Reload.Error, tt.want) {
				t.Fatalf("/status reload = %+v, want the error", st.Reload)
			}
			if len(st.SVIDs) != 1 || st.SVIDs[0].Name != "web" {
				t.Fatalf("/status svids = %+v, want the running web block", st.SVIDs)
			}
			h.waitReady(t, 200)
		})
	}
}

// waitReloads waits until a has attempted n reloads.
func waitReloads(t *testing.T, a *agent.Agent, n uint64) agent.ReloadStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rs := a.ReloadStatus()
		if rs.Reloads >= n {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("reload %d never happened: %+v", n, rs)
		}
		time.Sleep(10 * time.Millisecond) // the watcher reloads in the background: no event to wait on
	}
}

// TestReloadLoaderPanics: a loader that panics fails the reload like an
// invalid configuration; the agent keeps running the old one.
func TestReloadLoaderPanics(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	w := newRecWriter()
	cfg := &config.Config{DaemonMode: true, Issuers: []config.Plugin{plugin("fake-pull", iss)},
		SVIDs: []config.SVID{{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true,
			Writers: []config.Plugin{plugin("fake", w)}}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(cfg, agent.WithHealthListener(ln), agent.WithReload(func() (*config.Config, error) {
		panic("loader blew up")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{a: a, cancel: cancel, done: make(chan error, 1), url: "http://" + ln.Addr().String()}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	h.waitReady(t, 200)
	err = a.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "loader blew up") {
		t.Fatalf("Reload = %v, want the recovered panic", err)
	}
	if rs := a.ReloadStatus(); rs.Result != agent.ReloadInvalid {
		t.Fatalf("ReloadStatus = %+v, want %s", rs, agent.ReloadInvalid)
	}
	h.runErr(t)
	h.waitReady(t, 200)
}

func init() {
	registry.Register(registry.Module{ID: "writer.fake-panic", NewConfig: func() any { return nil },
		New: func(any, registry.Env) (any, error) { panic("constructor blew up") }})
}

// TestReloadConstructorPanics: a plugin whose constructor panics fails
// the reload; the agent keeps running the old configuration.
func TestReloadConstructorPanics(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	mk := func(w config.Plugin) *config.Config {
		return &config.Config{DaemonMode: true, Issuers: []config.Plugin{plugin("fake-pull", iss)},
			SVIDs: []config.SVID{{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true,
				Writers: []config.Plugin{w}}}}
	}
	rl := startReloadable(t, mk(plugin("fake", newRecWriter())))
	rl.waitReady(t, 200)
	err := rl.reload(t, mk(config.Plugin{Name: "fake-panic", Type: "fake-panic"}), nil)
	if err == nil || !strings.Contains(err.Error(), "constructor blew up") {
		t.Fatalf("Reload = %v, want the recovered panic", err)
	}
	if rs := rl.a.ReloadStatus(); rs.Result != agent.ReloadFailed {
		t.Fatalf("ReloadStatus = %+v, want %s", rs, agent.ReloadFailed)
	}
	rl.runErr(t)
	rl.waitReady(t, 200)
}
