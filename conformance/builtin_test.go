package conformance_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/sdk"

	_ "github.com/svidagent/svidagent/plugins/dev"
	_ "github.com/svidagent/svidagent/plugins/exec"
	_ "github.com/svidagent/svidagent/plugins/files"
	_ "github.com/svidagent/svidagent/plugins/filewatch"
	_ "github.com/svidagent/svidagent/plugins/signal"
	_ "github.com/svidagent/svidagent/plugins/workloadapi"
)

// builtin serves a registered built-in module the way an SDK plugin is
// served: Validate decodes the JSON config strictly into the module's
// config struct and runs its Validate; Configure builds the plugin with
// New, replacing (and closing) the previous one.
type builtin struct {
	mod registry.Module
	mu  sync.Mutex
	cur any
}

func (b *builtin) decode(js []byte) (any, hostapi.FieldErrors) {
	cfg := b.mod.NewConfig()
	var fes hostapi.FieldErrors
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		fes.Add("", "decoding the config: "+err.Error())
		return nil, fes
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			if es := hostapi.AsFieldErrors(err); es != nil {
				return nil, es
			}
			fes.Add("", err.Error())
			return nil, fes
		}
	}
	return cfg, nil
}

func (b *builtin) Validate(js []byte) hostapi.FieldErrors { _, es := b.decode(js); return es }

func (b *builtin) Configure(_ context.Context, js []byte) error {
	cfg, es := b.decode(js)
	if es != nil {
		return es
	}
	impl, err := b.mod.New(cfg, registry.Env{Logger: slog.New(slog.DiscardHandler), Name: "conformance"})
	if err != nil {
		return err
	}
	b.mu.Lock()
	old := b.cur
	b.cur = impl
	b.mu.Unlock()
	closeImpl(old)
	return nil
}

func closeImpl(impl any) {
	if c, ok := impl.(io.Closer); ok {
		_ = c.Close()
	}
}

func (b *builtin) Close() error {
	b.mu.Lock()
	old := b.cur
	b.cur = nil
	b.mu.Unlock()
	closeImpl(old)
	return nil
}

func (b *builtin) current() any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

type builtinNotifier struct{ *builtin }

func (b builtinNotifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	return b.current().(hostapi.Notifier).Notify(ctx, ev)
}

type builtinWriter struct{ *builtin }

func (b builtinWriter) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	return b.current().(hostapi.Writer).Write(ctx, set)
}

type builtinIssuer struct{ *builtin }

func (b builtinIssuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	return b.current().(hostapi.Issuer).Issue(ctx, req)
}

// builtinTarget returns t completed to run the registered module id
// in-process.
func builtinTarget(tb testing.TB, id string, t conformance.Target) conformance.Target {
	tb.Helper()
	kind, name, _ := cutID(id)
	mod, ok := registry.Lookup(kind, name)
	if !ok {
		tb.Fatalf("no built-in %s", id)
	}
	t.Kind = kind
	t.Info = sdk.Info{Name: id, Version: "builtin"}
	if s, ok := mod.NewConfig().(interface{ SignsCSR() bool }); kind == hostapi.KindIssuer && (!ok || !s.SignsCSR()) {
		t.Info.Capabilities = []string{"issuer.returns_keys"}
	}
	t.NewImpl = func() any {
		b := &builtin{mod: mod}
		switch kind {
		case hostapi.KindIssuer:
			return builtinIssuer{b}
		case hostapi.KindWriter:
			return builtinWriter{b}
		default:
			return builtinNotifier{b}
		}
	}
	return t
}

func cutID(id string) (hostapi.Kind, string, bool) {
	for i := range id {
		if id[i] == '.' {
			return hostapi.Kind(id[:i]), id[i+1:], true
		}
	}
	return "", "", false
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestBuiltins runs the suite over every registered built-in module.
func TestBuiltins(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/conformance")
	ca := testca.New(t, td)

	// notifier.signal signals a child that ignores the signal.
	child := exec.Command("sh", "-c", "trap '' USR1; exec sleep 600")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(child.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}

	// issuer.workloadapi against a fake Workload API.
	wl := fakeworkloadapi.New(t)
	wl.SetX509([]*x509svid.SVID{ca.X509SVID(t, id)}, x509bundle.NewSet(ca.X509Bundle()))

	// issuer.files over a directory of cert, key and bundle files.
	filesDir := t.TempDir()
	writeTLSFiles(t, filesDir, ca.X509SVID(t, id), ca.X509Bundle())

	outDir := t.TempDir()
	tests := []struct {
		id     string
		target conformance.Target
	}{
		{"writer.files", conformance.Target{
			OutputDir:         outDir,
			ConfigJSON:        mustJSON(t, map[string]any{"dir": outDir}),
			InvalidConfigJSON: []byte(`{"layout":"no-such-layout"}`),
			Modes:             map[string]fs.FileMode{"svid.pem": 0o644, "svid_key.pem": 0o600, "svid_bundle.pem": 0o644},
		}},
		{"notifier.exec", conformance.Target{
			ConfigJSON:        []byte(`{"cmd":"/bin/true"}`),
			InvalidConfigJSON: []byte(`{"args":"x"}`),
		}},
		{"notifier.signal", conformance.Target{
			ConfigJSON:        mustJSON(t, map[string]any{"pid_file": pidFile, "signal": "SIGUSR1"}),
			InvalidConfigJSON: []byte(`{"signal":"SIGNOPE"}`),
			FailingConfigJSON: mustJSON(t, map[string]any{"pid_file": filepath.Join(t.TempDir(), "missing.pid"), "signal": "SIGUSR1"}),
		}},
		{"issuer.dev", conformance.Target{
			ConfigJSON:        []byte(`{"trust_domain":"example.org","ttl":"10m"}`),
			InvalidConfigJSON: []byte(`{"ttl":"forever"}`),
		}},
		{"issuer.workloadapi", conformance.Target{
			ConfigJSON:        mustJSON(t, map[string]any{"address": wl.Addr()}),
			InvalidConfigJSON: []byte(`{"address":"tcp://"}`),
			BackendDown:       wl.Stop,
		}},
		{"issuer.files", conformance.Target{
			ConfigJSON:        mustJSON(t, map[string]any{"dir": filesDir}),
			InvalidConfigJSON: []byte(`{"debounce":"soon"}`),
			BackendDown:       func() { _ = os.RemoveAll(filesDir) },
		}},
	}
	registered := map[string]bool{}
	for _, k := range []hostapi.Kind{hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier} {
		for _, n := range registry.Names(k) {
			registered[string(k)+"."+n] = true
		}
	}
	for _, tt := range tests {
		delete(registered, tt.id)
		t.Run(tt.id, func(t *testing.T) {
			conformance.Run(t, builtinTarget(t, tt.id, tt.target))
		})
	}
	for id := range registered {
		t.Errorf("built-in %s is registered but not run through the suite: add it to TestBuiltins", id)
	}
}

func writeTLSFiles(t *testing.T, dir string, s *x509svid.SVID, b *x509bundle.Bundle) {
	t.Helper()
	var certs, bundle bytes.Buffer
	for _, c := range s.Certificates {
		_ = pem.Encode(&certs, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	for _, c := range b.X509Authorities() {
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for name, data := range map[string][]byte{"tls.crt": certs.Bytes(), "tls.key": key, "ca.crt": bundle.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// webhookServer answers 204 on / and 500 on /fail.
func webhookServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/fail" {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return srv, net.JoinHostPort(host, port)
}

// TestExampleWebhook runs the suite over examples/notifier-webhook, as a
// .wasm module and as a go-plugin subprocess.
func TestExampleWebhook(t *testing.T) {
	srv, hostport := webhookServer(t)
	for _, path := range []string{bin("notifier-webhook.wasm"), bin("notifier-webhook")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			conformance.Run(t, conformance.Target{
				Kind:              hostapi.KindNotifier,
				Path:              path,
				CacheDir:          cacheDir,
				AllowHosts:        []string{hostport},
				ConfigJSON:        mustJSON(t, map[string]any{"url": srv.URL + "/"}),
				FailingConfigJSON: mustJSON(t, map[string]any{"url": srv.URL + "/fail"}),
			})
		})
	}
}

var _ = errors.New
var _ = fmt.Sprint
