//go:build !wasip1

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/wire"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/wasm"
)

const (
	methodValidate  = "svidagent.plugin.v1.Plugin/Validate"
	methodConfigure = "svidagent.plugin.v1.Plugin/Configure"
	methodNotify    = "svidagent.plugin.notifier.v1.Notifier/Notify"
)

// The plugin's init served it (notifier.Serve), in sdk/wasm's stub build
// too: the tests drive it with wasm.Call, through the same dispatch the
// .wasm uses.

// fakeHost is the agent's side: it allows one host and makes the request
// with net/http, as the agent's HTTP host service does.
type fakeHost struct {
	allow string // host:port
	mu    sync.Mutex
	logs  []string
}

func (h *fakeHost) Log(level slog.Level, msg string, attrs ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, level.String()+" "+msg)
}

func (h *fakeHost) HTTP(ctx context.Context, r *sdk.HTTPRequest) (*sdk.HTTPResponse, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, err
	}
	if u.Host != h.allow {
		return nil, sdk.Error(sdk.CodePermissionDenied, "host "+u.Host+" is not allowed")
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return &sdk.HTTPResponse{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, err
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   []string
	}{
		{"minimal", `{"url":"http://127.0.0.1:8080/hook"}`, nil},
		{"headers", `{"url":"https://hooks.example.com/x","headers":{"x-token":"s3cret"}}`, nil},
		{"missing url", `{}`, []string{"url"}},
		{"empty url", `{"url":""}`, []string{"url"}},
		{"ftp", `{"url":"ftp://x/y"}`, []string{"url"}},
		{"no host", `{"url":"http:///x"}`, []string{"url"}},
		{"url not a string", `{"url":7}`, []string{"url"}},
		{"headers not a map", `{"url":"http://x/","headers":["a"]}`, []string{"headers"}},
		{"header not a string", `{"url":"http://x/","headers":{"x-n":1}}`, []string{"headers.x-n"}},
		{"unknown attribute", `{"url":"http://x/","method":"PUT"}`, []string{"method"}},
		{"not an object", `[1]`, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp pluginv1.ValidateResponse
			if err := wasm.Call(context.Background(), methodValidate, &pluginv1.ValidateRequest{ConfigJson: []byte(tt.config)}, &resp); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range resp.GetProblems() {
				got = append(got, p.GetField())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems with %v, want %v: %v", got, tt.want, resp.GetProblems())
			}
		})
	}
}

func TestNotify(t *testing.T) {
	type hit struct {
		ctype, token string
		body         map[string]any
	}
	hits := make(chan hit, 10)
	status := http.StatusNoContent
	var statusMu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		hits <- hit{r.Header.Get("Content-Type"), r.Header.Get("X-Token"), body}
		statusMu.Lock()
		defer statusMu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte("upstream says hi"))
	}))
	defer srv.Close()
	setStatus := func(s int) { statusMu.Lock(); status = s; statusMu.Unlock() }
	host := &fakeHost{allow: strings.TrimPrefix(srv.URL, "http://")}
	ctx := sdk.WithHost(context.Background(), host)

	now := time.Date(2026, 5, 1, 12, 0, 0, 5, time.UTC)
	ev := &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509 | hostapi.ChangedJWTSVID, Initial: true, Time: now,
		X509:  []hostapi.X509Identity{{SPIFFEID: "spiffe://example.org/web", Serial: "0a1b", NotAfter: now.Add(time.Hour)}},
		JWT:   []hostapi.JWTIdentity{{SPIFFEID: "spiffe://example.org/web", Audiences: []string{"api"}, Expiry: now.Add(time.Minute), FileName: "api.token"}},
		Paths: []string{"/run/svid/svid.pem"}}
	notify := wire.RotationEventToProto(ev)

	if err := wasm.Call(ctx, methodNotify, notify, nil); sdk.CodeOf(err) != sdk.CodeFailedPrecondition {
		t.Fatalf("Notify before Configure = %v, want FAILED_PRECONDITION", err)
	}
	cfg := `{"url":"` + srv.URL + `/hook","headers":{"x-token":"s3cret"}}`
	if err := wasm.Call(ctx, methodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(cfg)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := wasm.Call(ctx, methodNotify, notify, &notifierv1.NotifyResponse{}); err != nil {
		t.Fatal(err)
	}
	h := <-hits
	want := map[string]any{
		"name": "web", "reason": "x509,jwt_svid", "initial": true, "time": "2026-05-01T12:00:00.000000005Z",
		"x509":  []any{map[string]any{"spiffe_id": "spiffe://example.org/web", "serial": "0a1b", "not_after": "2026-05-01T13:00:00Z"}},
		"jwt":   []any{map[string]any{"spiffe_id": "spiffe://example.org/web", "audiences": []any{"api"}, "expiry": "2026-05-01T12:01:00Z", "file_name": "api.token"}},
		"paths": []any{"/run/svid/svid.pem"},
	}
	if !reflect.DeepEqual(h.body, want) || h.ctype != "application/json" || h.token != "s3cret" {
		t.Errorf("POST = %q %q %v\nwant body %v", h.ctype, h.token, h.body, want)
	}

	tests := []struct {
		name     string
		status   int
		wantCode sdk.Code
	}{
		{"server error", http.StatusBadGateway, sdk.CodeUnavailable},
		{"client error", http.StatusForbidden, sdk.CodeUnknown},
		{"ok", http.StatusOK, sdk.CodeOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setStatus(tt.status)
			err := wasm.Call(ctx, methodNotify, notify, nil)
			<-hits
			if sdk.CodeOf(err) != tt.wantCode {
				t.Errorf("Notify = %v (%v), want %v", err, sdk.CodeOf(err), tt.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), "upstream says hi") {
				t.Errorf("the error %q does not quote the answer", err)
			}
		})
	}

	// A host outside the grant.
	other := `{"url":"http://hooks.example.com/x"}`
	if err := wasm.Call(ctx, methodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(other)}, nil); err != nil {
		t.Fatal(err)
	}
	err := wasm.Call(ctx, methodNotify, notify, nil)
	if !errors.Is(err, sdk.ErrNotAllowed) || !strings.Contains(err.Error(), "allow { hosts") {
		t.Errorf("Notify to a host not allowed = %v, want ErrNotAllowed with a hint", err)
	}
}

// TestBuildWasm proves the same source builds as a WASI reactor, with the
// command the README gives, and reports the module's size.
func TestBuildWasm(t *testing.T) {
	out := filepath.Join(t.TempDir(), "notifier-webhook.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatal("not a WebAssembly module")
	}
	for _, name := range []string{"svidagent_abi_v1", "svidagent_call", "svidagent_alloc", "svidagent_free", "_initialize"} {
		if !bytes.Contains(b, []byte(name)) {
			t.Errorf("the module does not name %s", name)
		}
	}
	t.Logf("notifier-webhook.wasm: %d bytes (%.1f MB)", len(b), float64(len(b))/1e6)
}
