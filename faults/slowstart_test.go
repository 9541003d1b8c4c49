package faults_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/testkit"
)

// The background start of plugins (issue 10 item 1): the first delivery
// never waits for a writer or notifier plugin that is still starting, and
// a plugin that never starts fails only its own outputs.

// pluginStatus is the part of /status the tests of this file read.
type pluginStatus struct {
	Starting []string `json:"starting"`
	Plugins  []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
	} `json:"plugins"`
	SVIDs []struct {
		Notifiers []struct {
			Notifier  string `json:"notifier"`
			Calls     uint64 `json:"calls"`
			LastError string `json:"last_error"`
			Starting  bool   `json:"starting"`
		} `json:"notifiers"`
	} `json:"svids"`
}

// startStatus reads /status of the agent on port.
func startStatus(t *testing.T, port int) pluginStatus {
	t.Helper()
	var st pluginStatus
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decoding /status: %v", err)
	}
	if len(st.SVIDs) != 1 {
		t.Fatalf("/status has %d svids, want 1", len(st.SVIDs))
	}
	return st
}

// pluginState returns the state and last error /status reports of plugin
// name.
func (st pluginStatus) pluginState(name string) (state, lastErr string) {
	for _, p := range st.Plugins {
		if p.Name == name {
			return p.State, p.LastError
		}
	}
	return "", ""
}

// TestSlowPluginStart: an agent with a go-plugin notifier that blocks
// before its handshake until the test releases it delivers the files at
// once, and /status says the plugin is starting; a rotation meanwhile is
// delivered too. Once released, the plugin is notified of the latest
// rotation only (latest wins), and no longer reported as starting.
func TestSlowPluginStart(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	bin, sum := buildHostile(t, dir, "wait:"+release)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	srv := fakeworkloadapi.New(t)
	rotate := func() string {
		s := ca.X509SVID(t, spiffeid.RequireFromPath(td, "/slow"))
		srv.SetX509([]*x509svid.SVID{s}, bundles)
		return serialHex(s.Certificates[0])
	}
	first := rotate()
	port := freePort(t)
	out := filepath.Join(dir, "out")
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`state_dir = "state"

plugin "slow" {
  command       = %q
  sha256        = %q
  start_timeout = "10m"
  config {}
}
`, bin, sum)+nativeConfig(srv.Addr(), out, "flat", port, `  notifier "slow" {}`+"\n"))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")

	// The plugin cannot start before the release file exists: whatever
	// happens until then happened while it was starting.
	p.waitLog(t, 0, 60*time.Second, "the first delivery", delivered(first))
	if entries, err := os.ReadDir(out); err != nil || len(entries) == 0 {
		t.Fatalf("no files in %s after the first delivery: %v", out, err)
	}
	st := startStatus(t, port)
	if !slices.Contains(st.Starting, "slow") {
		t.Errorf("/status starting = %q, want it to name the slow plugin", st.Starting)
	}
	if state, _ := st.pluginState("slow"); state != "starting" {
		t.Errorf("/status state of the slow plugin = %q, want starting", state)
	}
	if n := st.SVIDs[0].Notifiers; len(n) != 1 || !n[0].Starting || n[0].Calls != 0 || !strings.Contains(n[0].LastError, "still starting") {
		t.Errorf("/status notifiers = %+v, want the slow one starting, never called", n)
	}
	if code, _ := (health{fmt.Sprintf("http://127.0.0.1:%d", port)}).ready(); code != 200 {
		t.Errorf("/ready = %d while only a notifier plugin is starting, want 200", code)
	}
	from := p.numRecords()
	latest := rotate()
	p.waitLog(t, from, 30*time.Second, "the delivery of the rotation while the plugin starts", delivered(latest))

	writeFile(t, release, "")
	i := p.waitLog(t, from, 60*time.Second, "the slow plugin's notification", func(r logRecord) bool {
		return r.Msg == "notified" && field(r, "plugin") == "slow"
	})
	if got := p.record(i).Serial; got != latest {
		t.Errorf("the slow plugin was notified of serial %q first, want the latest %q (the first was %q)", got, latest, first)
	}
	// The plugin logs before its Notify returns to the agent.
	testkit.WaitFor(t, 10*time.Second, "the notification in /status", func() bool {
		st = startStatus(t, port)
		return st.SVIDs[0].Notifiers[0].Calls > 0
	})
	if len(st.Starting) != 0 {
		t.Errorf("/status starting = %q after the start, want none", st.Starting)
	}
	if state, lastErr := st.pluginState("slow"); state != "ok" {
		t.Errorf("/status state of the slow plugin = %q (%s), want ok", state, lastErr)
	}
	if n := st.SVIDs[0].Notifiers; len(n) != 1 || n[0].Starting || n[0].Calls != 1 || n[0].LastError != "" {
		t.Errorf("/status notifiers = %+v, want the slow one called once, without error", n)
	}
}

// TestPluginNeverStarts: a go-plugin notifier that exits before its
// handshake fails its own output only: the agent runs, delivers the files
// and is ready; the log says at error level that the plugin failed to
// start and why, once per attempt (the start is tried again with backoff),
// and /status reports the plugin and its notifier failing with that error.
func TestPluginNeverStarts(t *testing.T) {
	dir := t.TempDir()
	bin, sum := buildHostile(t, dir, "exit")
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	srv := fakeworkloadapi.New(t)
	svid := ca.X509SVID(t, spiffeid.RequireFromPath(td, "/never"))
	srv.SetX509([]*x509svid.SVID{svid}, x509bundle.NewSet(ca.X509Bundle()))
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`state_dir = "state"

plugin "never" {
  command = %q
  sha256  = %q
  config {}
}
`, bin, sum)+nativeConfig(srv.Addr(), filepath.Join(dir, "out"), "flat", port, `  notifier "never" {}`+"\n"))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	p.waitLog(t, 0, 60*time.Second, "the delivery", delivered(serialHex(svid.Certificates[0])))
	failedStart := func(r logRecord) bool {
		return r.Level == "ERROR" && strings.HasPrefix(r.Msg, "plugin failed to start") && field(r, "plugin") == "never"
	}
	i := p.waitLog(t, 0, 60*time.Second, "the plugin's start failure", failedStart)
	const why = "ended by itself (exit status 3)"
	if msg := p.record(i).Error; !strings.Contains(msg, `plugin "never"`) || !strings.Contains(msg, why) {
		t.Errorf("start failure %q, want it to name the plugin and say %q", msg, why)
	}
	testkit.WaitFor(t, 10*time.Second, "/ready 200", func() bool {
		code, _ := (health{fmt.Sprintf("http://127.0.0.1:%d", port)}).ready()
		return code == 200
	})
	st := startStatus(t, port)
	if state, lastErr := st.pluginState("never"); state != "failing" || !strings.Contains(lastErr, why) {
		t.Errorf("/status plugin never: %q, %q; want failing with %q", state, lastErr, why)
	}
	if n := st.SVIDs[0].Notifiers; len(n) != 1 || n[0].Starting || n[0].Calls != 0 ||
		!strings.Contains(n[0].LastError, "failed to start") || !strings.Contains(n[0].LastError, "attempts; the next at") {
		t.Errorf("/status notifiers = %+v, want never failed to start, tried again, never called", n)
	}
	if len(st.Starting) != 0 {
		t.Errorf("/status starting = %q, want none", st.Starting)
	}
	// The start is tried again with backoff, each failure logged once.
	i = p.waitLog(t, i+1, 60*time.Second, "a second attempt's failure", failedStart)
	if msg := p.record(i).Error; !strings.Contains(msg, why) {
		t.Errorf("second start failure %q, want it to say %q", msg, why)
	}
}
