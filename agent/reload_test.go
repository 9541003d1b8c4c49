package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/registry"
)

// lcWriter is a writer that records its lifecycle (new, start, close) in
// a shared journal, so that a test can check the order of a reload.
type lcWriter struct {
	name    string
	journal *journal
	failNew bool
	w       *recWriter
}

type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	j.log = append(j.log, s)
	j.mu.Unlock()
}

func (j *journal) entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

type lcInstance struct{ spec *lcWriter }

func (l *lcInstance) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	return l.spec.w.Write(ctx, set)
}
func (l *lcInstance) Start(context.Context) error {
	l.spec.journal.add("start " + l.spec.name)
	return nil
}
func (l *lcInstance) Stop()        { l.spec.journal.add("stop " + l.spec.name) }
func (l *lcInstance) Close() error { l.spec.journal.add("close " + l.spec.name); return nil }

func init() {
	registry.Register(registry.Module{ID: "writer.fake-lc", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) {
			spec := cfg.(*lcWriter)
			if spec.failNew {
				spec.journal.add("fail " + spec.name)
				return nil, errors.New("cannot configure " + spec.name)
			}
			spec.journal.add("new " + spec.name)
			return &lcInstance{spec: spec}, nil
		}})
}

// reloadable runs an agent whose Reload takes the config set last.
type reloadable struct {
	*harness
	mu   sync.Mutex
	next *config.Config
	err  error
}

func startReloadable(t *testing.T, cfg *config.Config) *reloadable {
	t.Helper()
	rl := &reloadable{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(cfg, agent.WithHealthListener(ln), agent.WithRetry(10*time.Millisecond, 50*time.Millisecond),
		agent.WithReload(func() (*config.Config, error) {
			rl.mu.Lock()
			defer rl.mu.Unlock()
			return rl.next, rl.err
		}))
	ctx, cancel := context.WithCancel(context.Background())
	rl.harness = &harness{a: a, cancel: cancel, done: make(chan error, 1), url: "http://" + ln.Addr().String()}
	go func() { rl.done <- a.Run(ctx) }()
	t.Cleanup(func() { rl.stop(t) })
	return rl
}

func (rl *reloadable) reload(t *testing.T, cfg *config.Config, loadErr error) error {
	t.Helper()
	rl.mu.Lock()
	rl.next, rl.err = cfg, loadErr
	rl.mu.Unlock()
	// Run may not have started yet: Reload says so, and is tried again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := rl.a.Reload(context.Background())
		if err == nil || !strings.Contains(err.Error(), "not running") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lcPlugin(spec *lcWriter) config.Plugin {
	return config.Plugin{Name: "fake-lc", Type: "fake-lc", Config: spec}
}

func TestReloadMakeBeforeBreak(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	j := &journal{}
	a := &lcWriter{name: "A", journal: j, w: newRecWriter()}
	b := &lcWriter{name: "B", journal: j, w: newRecWriter()}
	cfgA := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-pull", iss)},
		SVIDs: []config.SVID{{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true,
			Writers: []config.Plugin{lcPlugin(a)}}},
	}
	rl := startReloadable(t, cfgA)
	first := recv(t, a.w.wrote, "A's first write")
	rl.waitReady(t, 200)

	// The writer's config changes: B is built and started before A is
	// stopped and closed, and B gets the current credentials at once,
	// without a new issue (the issuer and the request are unchanged).
	cfgB := &config.Config{
		DaemonMode: true,
		Issuers:    cfgA.Issuers,
		SVIDs: []config.SVID{{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true,
			Writers: []config.Plugin{lcPlugin(b)}}},
	}
	if err := rl.reload(t, cfgB, nil); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	got := recv(t, b.w.wrote, "B's first write")
	if got.X509SVIDs[0].Certificates[0].SerialNumber.Cmp(first.X509SVIDs[0].Certificates[0].SerialNumber) != 0 {
		t.Errorf("B got a new certificate; a rebuilt block with the same issuer and request delivers the current one")
	}
	if n := iss.calls.Load(); n != 1 {
		t.Errorf("issuer called %d times, want 1: nothing needed a new issue", n)
	}
	log := j.entries()
	idx := func(s string) int {
		i := slices.Index(log, s)
		if i < 0 {
			t.Fatalf("journal %v has no %q", log, s)
		}
		return i
	}
	if !(idx("new B") < idx("start B") && idx("start B") < idx("stop A") && idx("stop A") < idx("close A")) {
		t.Errorf("journal %v: want new B, start B, then stop A, close A", log)
	}
	if st := rl.a.ReloadStatus(); st.Result != agent.ReloadOK || st.Reloads != 1 || st.LastSuccess == nil {
		t.Errorf("ReloadStatus = %+v, want one ok reload", st)
	}

	// An invalid config: nothing is built or closed, B keeps running.
	before := len(j.entries())
	loadErr := fmt.Errorf("loading: %w", errors.New("agent.hcl:3:1: error: Unsupported argument"))
	if err := rl.reload(t, nil, loadErr); err == nil {
		t.Fatal("Reload of an invalid config returned nil")
	}
	if after := j.entries(); len(after) != before {
		t.Errorf("an invalid config touched plugins: %v", after[before:])
	}
	st := rl.a.ReloadStatus()
	if st.Result != agent.ReloadInvalid || !strings.Contains(st.Error, "agent.hcl:3:1") || st.Reloads != 2 {
		t.Errorf("ReloadStatus = %+v, want invalid with the diagnostic", st)
	}
	if s := rl.a.Status(); s.Reload == nil || s.Reload.Result != agent.ReloadInvalid {
		t.Errorf("Status().Reload = %+v, want the invalid reload", s.Reload)
	}

	// A config whose new plugin cannot be configured: what was built is
	// closed, B is untouched and still delivers.
	c := &lcWriter{name: "C", journal: j, w: newRecWriter()}
	bad := &lcWriter{name: "bad", journal: j, failNew: true, w: newRecWriter()}
	cfgBad := &config.Config{
		DaemonMode: true,
		Issuers:    cfgA.Issuers,
		SVIDs: []config.SVID{
			{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true, Writers: []config.Plugin{lcPlugin(c)}},
			{Name: "api", Issuer: "fake-pull", SPIFFEID: "spiffe://example.org/api", X509: true, Writers: []config.Plugin{lcPlugin(bad)}},
		},
	}
	before = len(j.entries())
	if err := rl.reload(t, cfgBad, nil); err == nil || !strings.Contains(err.Error(), "cannot configure bad") {
		t.Fatalf("Reload = %v, want the plugin's error", err)
	}
	if got, want := j.entries()[before:], []string{"new C", "fail bad", "stop C", "close C"}; !slices.Equal(got, want) {
		t.Errorf("journal after a failed build = %v, want %v", got, want)
	}
	if st := rl.a.ReloadStatus(); st.Result != agent.ReloadFailed {
		t.Errorf("ReloadStatus = %+v, want failed", st)
	}
	if s := rl.waitReady(t, 200); len(s.SVIDs) != 1 || s.SVIDs[0].Outputs[0].Writer != "fake-lc" {
		t.Errorf("status after a failed reload = %+v", s)
	}
}

func TestReloadKeepsUnchangedBlocks(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	j := &journal{}
	a := &lcWriter{name: "A", journal: j, w: newRecWriter()}
	n := newRecNotifier()
	web := config.SVID{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true,
		Writers: []config.Plugin{lcPlugin(a)}, Notifiers: []config.Notifier{notifierCfg(n, hostapi.ChangedX509)}}
	cfg1 := &config.Config{DaemonMode: true, Issuers: []config.Plugin{plugin("fake-pull", iss)}, SVIDs: []config.SVID{web}}
	rl := startReloadable(t, cfg1)
	recv(t, a.w.wrote, "first write")
	recv(t, n.events, "first event")

	api := newRecWriter()
	cfg2 := &config.Config{DaemonMode: true, Issuers: cfg1.Issuers, SVIDs: []config.SVID{web,
		{Name: "api", Issuer: "fake-pull", SPIFFEID: "spiffe://example.org/api", X509: true, Writers: []config.Plugin{plugin("fake", api)}}}}
	if err := rl.reload(t, cfg2, nil); err != nil {
		t.Fatal(err)
	}
	set := recv(t, api.wrote, "the new block's write")
	if got := set.X509SVIDs[0].ID.String(); got != "spiffe://example.org/api" {
		t.Errorf("new block wrote %s", got)
	}
	st := rl.waitReady(t, 200)
	if len(st.SVIDs) != 2 || st.SVIDs[1].Name != "api" {
		t.Fatalf("status = %+v, want web and api", st.SVIDs)
	}
	// The web block was not touched: its writer instance was neither
	// rebuilt nor closed, it wrote nothing more, its notifier got nothing,
	// and its issue count is the api block's one on top of web's one.
	if got := j.entries(); !slices.Equal(got, []string{"new A", "start A"}) {
		t.Errorf("journal = %v; the unchanged writer must keep its instance", got)
	}
	if c := a.w.count(); c != 1 {
		t.Errorf("unchanged writer wrote %d times, want 1", c)
	}
	select {
	case ev := <-n.events:
		t.Errorf("unchanged notifier got %+v", ev)
	default:
	}
	if c := iss.calls.Load(); c != 2 {
		t.Errorf("issuer called %d times, want 2 (web once, api once)", c)
	}
	if st.SVIDs[0].Notifiers[0].Calls != 1 {
		t.Errorf("web notifier calls = %d, want 1", st.SVIDs[0].Notifiers[0].Calls)
	}

	// Removing the api block stops it; web still untouched.
	if err := rl.reload(t, cfg1, nil); err != nil {
		t.Fatal(err)
	}
	if st := rl.a.Status(); len(st.SVIDs) != 1 || st.SVIDs[0].Name != "web" {
		t.Fatalf("status after removing api = %+v", st.SVIDs)
	}
	if got := j.entries(); !slices.Equal(got, []string{"new A", "start A"}) {
		t.Errorf("journal = %v", got)
	}
}

// writeFile replaces path atomically, as an editor's rename-on-save does.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(20 * time.Millisecond) // the command writes it: no event
	}
}

// TestReloadFromFileKeepsExecChild runs the real loader, dev issuer,
// files writer and exec notifier: a reload that adds an svid block (seen
// by the watcher after a rename-on-save) leaves the exec notifier's
// command running with the same pid.
func TestReloadFromFileKeepsExecChild(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pids")
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
  notifier "exec" {
    cmd  = "/bin/sh"
    argv = ["-c", "echo $$ >> %s; exec sleep 300"]
  }
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "web"), pidFile)
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
	pid := readPID(t, pidFile)

	// Add a block, by rename-on-save: the watcher reloads.
	writeFile(t, path, base+fmt.Sprintf(`
svid "api" {
  spiffe_id = "spiffe://example.org/api"
  writer "files" {
    dir = %q
  }
}
`, filepath.Join(dir, "api")))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "api", "svid.pem")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new block's files never appeared; reload status %+v", a.ReloadStatus())
		}
		time.Sleep(20 * time.Millisecond) // files on disk: no event to wait on
	}
	st := h.waitReady(t, 200)
	if len(st.SVIDs) != 2 {
		t.Fatalf("status has %d svids, want 2", len(st.SVIDs))
	}
	if rs := a.ReloadStatus(); rs.Result != agent.ReloadOK {
		t.Fatalf("ReloadStatus = %+v", rs)
	}
	b, _ := os.ReadFile(pidFile)
	if lines := strings.Fields(string(b)); len(lines) != 1 {
		t.Fatalf("the exec command was started %d times (%v), want once", len(lines), lines)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the exec child %d is gone after the reload: %v", pid, err)
	}
}

// TestReloadHammer reloads from several goroutines while status is read,
// under -race: reloads serialize, and every one succeeds.
func TestReloadHammer(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	j := &journal{}
	// Distinct names: comparing the two configs stops there, before the
	// live recWriter inside.
	w1 := &lcWriter{name: "1", journal: j, w: newRecWriter()}
	w2 := &lcWriter{name: "2", journal: j, w: newRecWriter()}
	mk := func(w *lcWriter) *config.Config {
		return &config.Config{DaemonMode: true, Issuers: []config.Plugin{plugin("fake-pull", iss)},
			SVIDs: []config.SVID{{Name: "web", Issuer: "fake-pull", SPIFFEID: webID.String(), X509: true,
				Writers: []config.Plugin{lcPlugin(w)}}}}
	}
	cfgs := []*config.Config{mk(w1), mk(w2)}
	rl := startReloadable(t, cfgs[0])
	rl.waitReady(t, 200)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 10 {
				rl.mu.Lock()
				rl.next = cfgs[(g+i)%2]
				rl.mu.Unlock()
				if err := rl.a.Reload(context.Background()); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				_ = rl.a.Status()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := rl.a.ReloadStatus(); st.Reloads != 40 {
		t.Errorf("Reloads = %d, want 40", st.Reloads)
	}
	rl.waitReady(t, 200)
}
