package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
	"github.com/svidagent/svidagent/internal/testkit"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/inproc"
)

// The background start of writer and notifier plugins (issue 10 item 1),
// with in-process plugins whose start the test controls.

// localConn is an in-process plugin as a runtime returns it.
type localConn struct{ *adapter.LocalConn }

func (localConn) HostServices() []string { return nil }

// plugWriter is an in-process writer plugin; configErr makes its
// Configure fail.
type plugWriter struct {
	configErr string
	// failFirst is how many Configure calls fail with configErr before
	// they succeed; 0: all fail when configErr is set.
	failFirst int
	configs   atomic.Int32
	wrote     chan *hostapi.CredentialSet
}

func (*plugWriter) Validate([]byte) hostapi.FieldErrors { return nil }

func (w *plugWriter) Configure(context.Context, []byte) error {
	n := int(w.configs.Add(1))
	if w.configErr != "" && (w.failFirst == 0 || n <= w.failFirst) {
		return errors.New(w.configErr)
	}
	return nil
}

func (w *plugWriter) Write(_ context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	w.wrote <- set
	return &hostapi.WriteResult{Paths: []string{"/plugin/" + set.Name}}, nil
}

// opener serves plugin block name's start: it waits until gates[name]
// is closed (or the start is cancelled), then opens impls[name] in
// process.
func opener(impls map[string]any, gates map[string]chan struct{}) func(context.Context, *config.External, load.Env) (load.Conn, error) {
	return func(ctx context.Context, e *config.External, _ load.Env) (load.Conn, error) {
		if g := gates[e.Name]; g != nil {
			select {
			case <-g:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		p, err := inproc.New(sdk.Info{Name: "plug-" + e.Name, Version: "0.1.0"}, impls[e.Name], nil)
		if err != nil {
			return nil, err
		}
		return localConn{adapter.NewLocalConn(p)}, nil
	}
}

// externalWriter is a writer block that refers to the plugin block name.
func externalWriter(name string) config.Plugin {
	return config.Plugin{Name: name, Type: name, External: &config.External{
		Name: name, Kind: hostapi.KindWriter, Runtime: config.RuntimeCommand,
		Path: "/nonexistent/" + name, InsecureSkipChecksum: true, ConfigJSON: []byte(`{}`),
	}}
}

// runWith runs an agent for cfg with opts until the test ends, and returns
// its harness and log.
func runWith(t *testing.T, cfg *config.Config, opts ...agent.Option) (*harness, *testkit.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	opts = append([]agent.Option{agent.WithHealthListener(ln), agent.WithRetry(10*time.Millisecond, 50*time.Millisecond),
		agent.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	a := agent.New(cfg, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{a: a, cancel: cancel, done: make(chan error, 1), url: "http://" + ln.Addr().String()}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		h.stop(t)
		if t.Failed() {
			t.Logf("agent log:\n%s", logs)
		}
	})
	return h, logs
}

// outputStatus returns the status of writer name.
func outputStatus(t *testing.T, st agent.Status, name string) agent.OutputStatus {
	t.Helper()
	for _, o := range st.SVIDs[0].Outputs {
		if o.Writer == name {
			return o
		}
	}
	t.Fatalf("no output %q in %+v", name, st.SVIDs[0].Outputs)
	return agent.OutputStatus{}
}

// TestSlowWriterPlugin: while a writer plugin is starting, the built-in
// writer gets every rotation and the notifiers are told; the plugin's
// output is not ready and /status says it is starting. Once the plugin is
// ready it gets the latest rotation, once, and nothing else is written or
// notified again.
func TestSlowWriterPlugin(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	slow := &plugWriter{wrote: make(chan *hostapi.CredentialSet, 100)}
	gate := make(chan struct{})
	s := svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))
	s.Writers = append(s.Writers, externalWriter("slow"))
	cfg := &config.Config{DaemonMode: true, StateDir: t.TempDir(),
		Issuers: []config.Plugin{plugin("fake-push", iss)}, SVIDs: []config.SVID{s}}
	h, _ := runWith(t, cfg, agent.WithPluginOpener(opener(map[string]any{"slow": slow}, map[string]chan struct{}{"slow": gate})))

	var serials []string
	for range 2 {
		svid := svidOf(t, ca, webID, time.Hour)
		serials = append(serials, serialOf(svid))
		iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}, X509Bundles: bundleOf(ca)}
		set := recv(t, w.wrote, "the built-in writer's delivery")
		if got := serialOf(set.X509SVIDs[0]); got != serials[len(serials)-1] {
			t.Fatalf("built-in writer got serial %s, want %s", got, serials[len(serials)-1])
		}
		ev := recv(t, n.events, "the notification")
		if got := ev.X509[0].Serial; got != serials[len(serials)-1] {
			t.Fatalf("notified of serial %s, want %s", got, serials[len(serials)-1])
		}
	}
	code, st := h.get(t, "/ready")
	if code != 503 {
		t.Errorf("/ready = %d while a writer plugin is starting, want 503", code)
	}
	if o := outputStatus(t, st, "fake"); !o.Ready {
		t.Errorf("built-in output %+v, want ready", o)
	}
	if o := outputStatus(t, st, "slow"); o.Ready || !o.Starting || !strings.Contains(o.LastError, `plugin "slow" is still starting`) {
		t.Errorf("plugin output %+v, want not ready, starting", o)
	}
	if !slices.Contains(st.Starting, "slow") {
		t.Errorf("status starting = %q, want slow", st.Starting)
	}
	if !slices.ContainsFunc(st.Problems, func(p string) bool {
		return strings.Contains(p, "writer slow") && strings.Contains(p, "still starting")
	}) {
		t.Errorf("problems %q do not say the plugin writer is starting", st.Problems)
	}
	select {
	case set := <-slow.wrote:
		t.Fatalf("the plugin wrote %+v before it started", set)
	default:
	}

	close(gate)
	set := recv(t, slow.wrote, "the plugin's delivery once ready")
	if got := serialOf(set.X509SVIDs[0]); got != serials[1] {
		t.Errorf("the plugin got serial %s, want the latest %s", got, serials[1])
	}
	if set.Changed != hostapi.ChangedX509 {
		t.Errorf("the plugin's first set changed %v, want x509", set.Changed)
	}
	st = h.waitReady(t, 200)
	if len(st.Starting) != 0 {
		t.Errorf("status starting = %q once ready, want none", st.Starting)
	}
	// Nothing else is written or notified: the catch-up is for the plugin.
	time.Sleep(100 * time.Millisecond)
	if c := w.count(); c != 2 {
		t.Errorf("the built-in writer wrote %d times, want 2", c)
	}
	if len(n.events) != 0 || len(slow.wrote) != 0 {
		t.Errorf("%d more notifications, %d more plugin writes; want none", len(n.events), len(slow.wrote))
	}
}

// TestWriterPluginNeverStarts: a writer plugin whose Configure rejects
// its config fails its own output only, with an error that names it, in
// the log (once) and in /status; the built-in writer and the notifier get
// the credentials, and Run keeps running.
func TestWriterPluginNeverStarts(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	w, n := newRecWriter(), newRecNotifier()
	broken := &plugWriter{configErr: "dir /nope does not exist", wrote: make(chan *hostapi.CredentialSet, 100)}
	s := svidCfg("fake-pull", w, notifierCfg(n, hostapi.ChangedX509))
	s.Writers = append(s.Writers, externalWriter("broken"))
	cfg := &config.Config{DaemonMode: true, StateDir: t.TempDir(),
		Issuers: []config.Plugin{plugin("fake-pull", iss)}, SVIDs: []config.SVID{s}}
	h, logs := runWith(t, cfg, agent.WithPluginOpener(opener(map[string]any{"broken": broken}, nil)))

	recv(t, w.wrote, "the built-in writer's delivery")
	recv(t, n.events, "the notification")
	failed := func() []map[string]any {
		var out []map[string]any
		for _, r := range logs.Records(t) {
			if r["msg"] != nil && strings.HasPrefix(fmt.Sprint(r["msg"]), "plugin failed to start") {
				out = append(out, r)
			}
		}
		return out
	}
	testkit.WaitFor(t, 10*time.Second, "the start failure in the log", func() bool { return len(failed()) > 0 })
	var o agent.OutputStatus
	testkit.WaitFor(t, 10*time.Second, "the failure in the plugin's output status", func() bool {
		_, st := h.get(t, "/status")
		o = outputStatus(t, st, "broken")
		return o.LastError != "" && !o.Starting
	})
	for _, want := range []string{`plugin "broken" failed to start`, "configuring", "dir /nope does not exist"} {
		if !strings.Contains(o.LastError, want) {
			t.Errorf("output error %q does not say %q", o.LastError, want)
		}
	}
	_, st := h.get(t, "/status")
	if outputStatus(t, st, "broken").Ready || !outputStatus(t, st, "fake").Ready {
		t.Errorf("outputs %+v: want the built-in one ready, the plugin's not", st.SVIDs[0].Outputs)
	}
	for _, p := range st.Plugins {
		if p.Name == "broken" && (p.State != agent.PluginFailing || !strings.Contains(p.LastError, "dir /nope does not exist")) {
			t.Errorf("plugin status %+v, want failing with the Configure error", p)
		}
	}
	// The start is tried again with backoff: each failure is a record at
	// error level naming the plugin, the Configure error and its attempt.
	for i, r := range failed() {
		if r["level"] != "ERROR" || r["plugin"] != "broken" || r["attempt"] != float64(i+1) ||
			!strings.Contains(fmt.Sprint(r["error"]), "dir /nope does not exist") {
			t.Errorf("start failure record %d: %v, want it at error level naming the plugin, the Configure error and attempt %d", i, r, i+1)
		}
	}
	if !strings.Contains(o.LastError, "attempts; the next at") {
		t.Errorf("output error %q does not say the start is tried again", o.LastError)
	}
	if len(broken.wrote) != 0 {
		t.Errorf("the plugin that never started wrote")
	}
	select {
	case err := <-h.done:
		h.done <- err
		t.Fatalf("Run returned %v", err)
	default:
	}
}

// TestWriterPluginStartRetried: a writer plugin whose start fails twice
// (a backend down at boot, say) is tried again with backoff, and once it
// starts it gets the latest credentials and its output is ready; the
// built-in writer delivered meanwhile.
func TestWriterPluginStartRetried(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	w := newRecWriter()
	flaky := &plugWriter{configErr: "the vault is sealed", failFirst: 2, wrote: make(chan *hostapi.CredentialSet, 100)}
	s := svidCfg("fake-pull", w)
	s.Writers = append(s.Writers, externalWriter("flaky"))
	cfg := &config.Config{DaemonMode: true, StateDir: t.TempDir(),
		Issuers: []config.Plugin{plugin("fake-pull", iss)}, SVIDs: []config.SVID{s}}
	h, logs := runWith(t, cfg, agent.WithPluginOpener(opener(map[string]any{"flaky": flaky}, nil)))

	first := recv(t, w.wrote, "the built-in writer's delivery")
	got := recv(t, flaky.wrote, "the plugin's delivery once it started")
	if got.Name != "web" || len(got.X509SVIDs) == 0 || len(first.X509SVIDs) == 0 ||
		got.X509SVIDs[0].Certificates[0].SerialNumber.Cmp(first.X509SVIDs[0].Certificates[0].SerialNumber) != 0 {
		t.Errorf("the plugin got %+v, want the credentials the built-in writer got", got)
	}
	if n := flaky.configs.Load(); n != 3 {
		t.Errorf("Configure was called %d times, want 3 (two failures, then the start)", n)
	}
	var attempts []any
	for _, r := range logs.Records(t) {
		if r["msg"] == "plugin failed to start; it is tried again with backoff until it starts, and at once when the configuration is reloaded" {
			attempts = append(attempts, r["attempt"])
		}
	}
	if !reflect.DeepEqual(attempts, []any{float64(1), float64(2)}) {
		t.Errorf("start failures logged for attempts %v, want 1 and 2", attempts)
	}
	testkit.WaitFor(t, 10*time.Second, "the plugin's output ready", func() bool {
		_, st := h.get(t, "/status")
		return outputStatus(t, st, "flaky").Ready
	})
	_, st := h.get(t, "/status")
	for _, p := range st.Plugins {
		if p.Name == "flaky" && (p.State != agent.PluginOK || p.LastError != "") {
			t.Errorf("plugin status %+v, want ok once started", p)
		}
	}
}

// TestStopWhilePluginStarts: an agent stopped while a writer plugin is
// still starting cancels the start and waits for it; Run returns, and the
// cancelled start is not reported as a failure.
func TestStopWhilePluginStarts(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	w := newRecWriter()
	s := svidCfg("fake-pull", w)
	s.Writers = append(s.Writers, externalWriter("stuck"))
	cfg := &config.Config{DaemonMode: true, StateDir: t.TempDir(),
		Issuers: []config.Plugin{plugin("fake-pull", iss)}, SVIDs: []config.SVID{s}}
	started := make(chan struct{})
	open := opener(map[string]any{"stuck": &plugWriter{wrote: make(chan *hostapi.CredentialSet, 1)}},
		map[string]chan struct{}{"stuck": make(chan struct{})}) // never released
	cancelled := make(chan error, 1)
	h, logs := runWith(t, cfg, agent.WithPluginOpener(func(ctx context.Context, e *config.External, env load.Env) (load.Conn, error) {
		close(started)
		c, err := open(ctx, e, env)
		cancelled <- err
		return c, err
	}))
	recv(t, started, "the plugin's start")
	recv(t, w.wrote, "the built-in writer's delivery")
	h.stop(t)
	if err := recv(t, cancelled, "the start's end"); !errors.Is(err, context.Canceled) {
		t.Errorf("the start ended with %v, want it cancelled", err)
	}
	if strings.Contains(logs.String(), "plugin failed to start") {
		t.Errorf("a start cancelled by the stop was logged as a failure:\n%s", logs)
	}
}

// TestOnSettled: the WithOnSettled hook runs once, only when credentials
// have been delivered and no plugin is still starting: not at the first
// delivery while a writer plugin starts, once that start has ended, and
// not again at later rotations. Without plugins it runs after the first
// delivery.
func TestOnSettled(t *testing.T) {
	ca := newTestCA(t, "example.org")
	rotate := func(iss *pushIssuer, w *recWriter) {
		t.Helper()
		iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svidOf(t, ca, webID, time.Hour)}, X509Bundles: bundleOf(ca)}
		recv(t, w.wrote, "the built-in writer's delivery")
	}
	t.Run("plugin starting", func(t *testing.T) {
		iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
		w := newRecWriter()
		slow := &plugWriter{wrote: make(chan *hostapi.CredentialSet, 100)}
		gate := make(chan struct{})
		s := svidCfg("fake-push", w)
		s.Writers = append(s.Writers, externalWriter("slow"))
		cfg := &config.Config{DaemonMode: true, StateDir: t.TempDir(),
			Issuers: []config.Plugin{plugin("fake-push", iss)}, SVIDs: []config.SVID{s}}
		settled := make(chan struct{}, 10)
		runWith(t, cfg, agent.WithPluginOpener(opener(map[string]any{"slow": slow}, map[string]chan struct{}{"slow": gate})),
			agent.WithOnSettled(func() { settled <- struct{}{} }))
		rotate(iss, w)
		rotate(iss, w) // the first delivery's hook, had it fired, has had time to
		select {
		case <-settled:
			t.Fatal("settled while a writer plugin was still starting")
		default:
		}
		close(gate)
		recv(t, slow.wrote, "the plugin's catch-up delivery")
		recv(t, settled, "the settled hook once the plugin started")
		rotate(iss, w)
		recv(t, slow.wrote, "the plugin's delivery of the third rotation")
		select {
		case <-settled:
			t.Fatal("the settled hook ran twice")
		default:
		}
	})
	t.Run("no plugin", func(t *testing.T) {
		iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
		w := newRecWriter()
		cfg := &config.Config{DaemonMode: true, Issuers: []config.Plugin{plugin("fake-push", iss)}, SVIDs: []config.SVID{svidCfg("fake-push", w)}}
		settled := make(chan struct{}, 10)
		runWith(t, cfg, agent.WithOnSettled(func() { settled <- struct{}{} }))
		select {
		case <-settled:
			t.Fatal("settled before any delivery")
		default:
		}
		rotate(iss, w)
		recv(t, settled, "the settled hook after the first delivery")
	})
}
