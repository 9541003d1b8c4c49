//go:build !wasip1

package notifier_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"github.com/svidagent/svidagent/sdk/core"
	"github.com/svidagent/svidagent/sdk/notifier"
)

// maxModule is the size a notifier built with this package must stay
// under (issue 10: a Go-SDK notifier of at most 4 MiB).
const maxModule = 4 << 20

// build builds ./testdata/guest as a module, as plugin authors are told to.
func build(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v\n%s", err, b)
	}
	return out
}

// records is a slog handler that keeps every record's message and
// attributes, flattened.
type records struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func (r records) Enabled(context.Context, slog.Level) bool { return true }
func (r records) WithGroup(string) slog.Handler            { return r }
func (r records) WithAttrs(as []slog.Attr) slog.Handler {
	r.attrs = append(slices.Clone(r.attrs), as...)
	return r
}

func (r records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	add := func(a slog.Attr) bool { b.WriteString(" " + a.Key + "=" + a.Value.String()); return true }
	for _, a := range r.attrs {
		add(a)
	}
	rec.Attrs(add)
	r.mu.Lock()
	*r.lines = append(*r.lines, b.String())
	r.mu.Unlock()
	return nil
}

func (r records) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.lines)
}

// TestModule runs a notifier built with this package as the agent runs
// it: the real WASM runtime, the HTTP grant of one loopback server, the
// agent's logger.
func TestModule(t *testing.T) {
	path := build(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest module: %d bytes (%.2f MiB)", fi.Size(), float64(fi.Size())/(1<<20))
	if fi.Size() > maxModule {
		t.Errorf("the guest module is %d bytes, over %d: something heavy got linked (see TestLinks)", fi.Size(), maxModule)
	}

	type post struct{ test, body string }
	posts := make(chan post, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- post{r.Header.Get("X-Test"), string(b)}
		w.Header().Set("X-Reply", "yes")
		w.Write([]byte("ok"))
	}))
	defer srv.Close()

	open := func(t *testing.T, url string) (hostapi.Notifier, records) {
		sum, err := wasmrt.HashFile(path)
		if err != nil {
			t.Fatal(err)
		}
		logs := records{mu: &sync.Mutex{}, lines: &[]string{}}
		ctx := context.Background()
		w, err := wasmrt.Open(ctx, wasmrt.Config{Path: path, SHA256: sum, Kind: hostapi.KindNotifier, Name: "g",
			Logger: slog.New(logs), AllowHosts: []string{srv.Listener.Addr().String()}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := adapter.Open(ctx, w, adapter.Settings{Kind: hostapi.KindNotifier, Name: "g",
			ConfigJSON: []byte(`{"url":"` + url + `"}`), HostVersion: "test", HostServices: w.HostServices()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p.Notifier(), logs
	}

	n, logs := open(t, srv.URL+"/hook")
	ctx := context.Background()
	if err := n.Notify(ctx, &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509, Paths: []string{"/a"}}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	// The agent adds component= and plugin= after the message.
	want := "WARN rotated component=plugin plugin=g name=web paths=1 reason=x509 !BADKEY=42"
	if !slices.Contains(logs.all(), want) {
		t.Errorf("the agent's log has no line %q:\n%s", want, strings.Join(logs.all(), "\n"))
	}

	if err := n.Notify(ctx, &hostapi.RotationEvent{Name: "http"}); err != nil {
		t.Fatalf("Notify over HTTP: %v", err)
	}
	if p := <-posts; p != (post{"1", "http"}) {
		t.Errorf("the server got %+v, want header X-Test: 1 and body http", p)
	}

	err = n.Notify(ctx, &hostapi.RotationEvent{Name: "fail"})
	if err == nil || !strings.Contains(err.Error(), "down on purpose") || !strings.Contains(err.Error(), "code = Unavailable") {
		t.Errorf("a failing Notify = %v, want UNAVAILABLE with the plugin's message", err)
	}

	// A URL outside the grant: the agent refuses, the plugin sees
	// ErrNotAllowed and says so.
	denied, _ := open(t, "http://192.0.2.1/hook")
	err = denied.Notify(ctx, &hostapi.RotationEvent{Name: "http"})
	if err == nil || !strings.Contains(err.Error(), "posting: denied") {
		t.Errorf("Notify to a host outside the grant = %v, want the plugin's ErrNotAllowed branch", err)
	}
	select {
	case p := <-posts:
		t.Errorf("a request outside the grant reached the server: %+v", p)
	default:
	}
}

// TestLinks checks, in the import graph of a wasip1 build, that a
// notifier built with this package links none of what makes sdk/wasm's
// notifier 6 MB: go-spiffe, crypto/x509, net/http, log/slog, protobuf
// reflection, and package hostapi or sdk themselves.
func TestLinks(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/svidagent/svidagent/sdk/notifier") {
		t.Fatalf("the guest does not import sdk/notifier; the test's premise is wrong: %v", deps)
	}
	for _, dep := range deps {
		for _, banned := range []string{
			"github.com/spiffe/", "github.com/go-jose/", "crypto/x509", "crypto/tls", "net/http", "log/slog",
			"google.golang.org/protobuf/proto", "google.golang.org/protobuf/reflect/",
			"github.com/svidagent/svidagent/hostapi\n", "github.com/svidagent/svidagent/sdk\n",
			"github.com/svidagent/svidagent/sdk/wasm\n", "github.com/svidagent/svidagent/sdk/internal/dispatch\n",
			"github.com/svidagent/svidagent/sdk/internal/lite/creds\n",
		} {
			if strings.HasPrefix(dep+"\n", banned) {
				t.Errorf("a notifier built with sdk/notifier links %s", dep)
			}
		}
	}
}

// TestSameTypes: the aliases make a notifier of this package a
// hostapi.Notifier, and its values those of hostapi and sdk.
func TestSameTypes(t *testing.T) {
	var es notifier.FieldErrors
	es.Add("url", "is required")
	var h hostapi.FieldErrors = es
	if hostapi.AsFieldErrors(h.Err()) == nil {
		t.Error("notifier.FieldErrors is not hostapi.FieldErrors")
	}
	err := notifier.Errorf(notifier.CodeUnavailable, "down: %w", context.DeadlineExceeded)
	if core.CodeOf(err) != core.CodeUnavailable {
		t.Errorf("CodeOf(%v) = %v, want UNAVAILABLE", err, core.CodeOf(err))
	}
}

func TestHeader(t *testing.T) {
	h := notifier.Header{}
	h.Set("content-type", "text/plain")
	h.Set("CONTENT-TYPE", "application/json")
	h.Set("x-api-key", "k")
	if len(h) != 2 || h["Content-Type"][0] != "application/json" || h["X-Api-Key"][0] != "k" {
		t.Errorf("Header after Set = %v", h)
	}
	if h.Get("content-TYPE") != "application/json" || h.Get("missing") != "" {
		t.Errorf("Get = %q, %q", h.Get("content-TYPE"), h.Get("missing"))
	}
}

// BenchmarkNotify is a warm Notify call of a notifier built with this
// package (testdata/guest), with a 4 KiB notification, through the agent's
// WASM runtime: "quiet" decodes the event and answers, the figure to
// compare with wasmrt's BenchmarkInvokeNotify (a hand-written guest);
// "logs" also logs one line through the agent, as sdk/wasm's
// BenchmarkGuestNotify does on bare wazero.
func BenchmarkNotify(b *testing.B) {
	path := build(b)
	sum, err := wasmrt.HashFile(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The agent's logger, discarding: the figure is the call, not the
	// writing of a log line.
	p, err := wasmrt.Open(ctx, wasmrt.Config{Path: path, SHA256: sum, Kind: hostapi.KindNotifier, Name: "g",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.Invoke(ctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"http://127.0.0.1:1/"}`)}, &pluginv1.ConfigureResponse{}); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"quiet", "logs"} {
		b.Run(name, func(b *testing.B) {
			req := &notifierv1.NotifyRequest{Name: name, Paths: []string{strings.Repeat("p", 4096)}}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
