package guest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/wire"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/dispatch"
	"github.com/svidagent/svidagent/sdk/internal/guest"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var id = spiffeid.RequireFromString("spiffe://example.org/web")

// notifier is a configurable notifier whose behaviour the event's name
// selects.
type notifier struct {
	mu         sync.Mutex
	events     []*hostapi.RotationEvent
	configs    []string
	closed     int
	configErr  error
	configured atomic.Int32
}

func (n *notifier) Validate(b []byte) hostapi.FieldErrors {
	var c struct {
		URL string `json:"url"`
	}
	var es hostapi.FieldErrors
	if err := json.Unmarshal(b, &c); err != nil {
		es.Add("", "not JSON: "+err.Error())
	} else if c.URL == "" {
		es.Add("url", "required")
	}
	return es
}

func (n *notifier) Configure(_ context.Context, b []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.configs = append(n.configs, string(b))
	n.configured.Add(1)
	return n.configErr
}

func (n *notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed++
	return nil
}

func (n *notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	n.mu.Lock()
	n.events = append(n.events, ev)
	n.mu.Unlock()
	switch ev.Name {
	case "panic":
		panic("boom in notify")
	case "fail":
		return errors.New("endpoint said no")
	case "unavailable":
		return sdk.Errorf(sdk.CodeUnavailable, "posting: %w", errors.New("connection refused"))
	case "deadline":
		return fmt.Errorf("posting: %w", context.DeadlineExceeded)
	case "fields":
		return fmt.Errorf("checking: %w", hostapi.FieldErrors{{Field: "url", Message: "bad"}})
	case "http":
		resp, err := sdk.HostFromContext(ctx).HTTP(ctx, &sdk.HTTPRequest{Method: "POST", URL: "http://h/x", Body: []byte("hi")})
		if err != nil {
			return err
		}
		if resp.StatusCode != 204 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	return nil
}

// plain is a notifier that takes no config.
type plain struct{ n atomic.Int32 }

func (p *plain) Notify(context.Context, *hostapi.RotationEvent) error { p.n.Add(1); return nil }

type writer struct{ got *hostapi.CredentialSet }

func (w *writer) Write(_ context.Context, s *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	w.got = s
	return &hostapi.WriteResult{Paths: []string{"/out/svid.pem"}}, nil
}

// issuer signs the CSR with ca; with ownKey it returns a key of its own.
type issuer struct {
	t      testing.TB
	ca     *testca.CA
	ownKey bool
}

func (i *issuer) Issue(_ context.Context, r *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if i.ownKey {
		return &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{i.ca.X509SVID(i.t, r.SPIFFEID)}}, nil
	}
	csr, err := x509.ParseCertificateRequest(r.CSR)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "parsing csr: %w", err)
	}
	chain := i.ca.Certify(i.t, r.SPIFFEID, csr.PublicKey)
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{{ID: r.SPIFFEID, Certificates: chain}},
		X509Bundles: x509bundle.NewSet(i.ca.X509Bundle()),
	}, nil
}

type both struct {
	plain
	writer
}

// fakeHost is a HostCaller that records calls and answers HTTP with code.
type fakeHost struct {
	mu    sync.Mutex
	calls []string
	logs  []*hostv1.LogRequest
	code  uint32
}

func (h *fakeHost) call(_ context.Context, method string, req []byte) (uint32, string, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, method)
	switch method {
	case abi.Logger_Log_FullMethodName:
		var r hostv1.LogRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			return 3, err.Error(), nil
		}
		h.logs = append(h.logs, &r)
		return 0, "", nil
	case abi.HTTP_Request_FullMethodName:
		if h.code != 0 {
			return h.code, "host \"h:80\" is not allowed", nil
		}
		var r hostv1.HTTPRequest
		if err := proto.Unmarshal(req, &r); err != nil || r.GetMethod() != "POST" || string(r.GetBody()) != "hi" {
			return 3, fmt.Sprintf("unexpected request %v %v", &r, err), nil
		}
		b, _ := proto.Marshal(&hostv1.HTTPResponse{Status: 204, Headers: []*hostv1.Header{{Name: "X-A", Value: "1"}}})
		return 0, "", b
	}
	return 12, "unknown", nil
}

func mustNew(t *testing.T, impl any, h guest.HostCaller) *guest.Dispatcher {
	t.Helper()
	d, err := dispatch.New(sdk.Info{Name: "test", Version: "0.1.0", Capabilities: []string{"x.y"}, ExampleConfigJSON: []byte(`{"url":"a"}`)}, impl, h)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mustConfigure configures d with no config, as the host does for a
// plugin block without one.
func mustConfigure(t *testing.T, d *guest.Dispatcher) {
	t.Helper()
	if code, msg := call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{}`)}, nil); code != 0 {
		t.Fatalf("Configure({}) = %d %q", code, msg)
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call runs Handle and decodes an OK answer into resp.
func call(t *testing.T, d *guest.Dispatcher, method string, req, resp proto.Message) (uint32, string) {
	t.Helper()
	code, msg, out := d.Handle(context.Background(), method, marshal(t, req))
	if code == 0 && resp != nil {
		if err := proto.Unmarshal(out, resp); err != nil {
			t.Fatalf("decoding %s response: %v", method, err)
		}
	}
	if code != 0 && len(out) != 0 {
		t.Errorf("%s: error answer carries %d payload bytes", method, len(out))
	}
	return code, msg
}

func configure(t *testing.T, d *guest.Dispatcher, cfg string) {
	t.Helper()
	if code, msg := call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(cfg)}, nil); code != 0 {
		t.Fatalf("Configure = %d %q", code, msg)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		info    sdk.Info
		impl    any
		want    hostapi.Kind
		wantErr string
	}{
		{"notifier", sdk.Info{Name: "n"}, &plain{}, hostapi.KindNotifier, ""},
		{"writer", sdk.Info{Name: "w"}, &writer{}, hostapi.KindWriter, ""},
		{"issuer", sdk.Info{Name: "i"}, &issuer{}, hostapi.KindIssuer, ""},
		{"none", sdk.Info{Name: "x"}, struct{}{}, "", "implements none"},
		{"several", sdk.Info{Name: "x"}, &both{}, "", "several plugin kinds"},
		{"nil", sdk.Info{Name: "x"}, nil, "", "nil"},
		{"no name", sdk.Info{}, &plain{}, "", "Name is required"},
		{"example config not JSON", sdk.Info{Name: "x", ExampleConfigJSON: []byte(`{url:`)}, &plain{}, "", "ExampleConfigJSON is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := dispatch.New(tt.info, tt.impl, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind() != tt.want {
				t.Errorf("Kind = %q, want %q", d.Kind(), tt.want)
			}
		})
	}
}

// TestNewOfKind checks the constructors of one kind: they check impl as
// New does, and their dispatcher serves the kind's method.
func TestNewOfKind(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	info := sdk.Info{Name: "k"}
	var nilNotifier *plain
	tests := []struct {
		name    string
		newD    func() (*guest.Dispatcher, error)
		want    hostapi.Kind
		wantErr string
	}{
		{"notifier", func() (*guest.Dispatcher, error) { return dispatch.NewNotifier(info, &plain{}, nil) }, hostapi.KindNotifier, ""},
		{"writer", func() (*guest.Dispatcher, error) { return dispatch.NewWriter(info, &writer{}, nil) }, hostapi.KindWriter, ""},
		{"issuer", func() (*guest.Dispatcher, error) { return dispatch.NewIssuer(info, &issuer{t: t, ca: ca}, nil) }, hostapi.KindIssuer, ""},
		{"nil notifier", func() (*guest.Dispatcher, error) { return dispatch.NewNotifier(info, nil, nil) }, "", "nil"},
		{"nil writer", func() (*guest.Dispatcher, error) { return dispatch.NewWriter(info, nil, nil) }, "", "nil"},
		{"nil issuer", func() (*guest.Dispatcher, error) { return dispatch.NewIssuer(info, nil, nil) }, "", "nil"},
		// A typed nil pointer is a value: its methods may work on nil.
		{"typed nil notifier", func() (*guest.Dispatcher, error) { return dispatch.NewNotifier(info, nilNotifier, nil) }, hostapi.KindNotifier, ""},
		{"notifier that is also a writer", func() (*guest.Dispatcher, error) { return dispatch.NewNotifier(info, &both{}, nil) }, "", "several plugin kinds"},
		{"no name", func() (*guest.Dispatcher, error) { return dispatch.NewWriter(sdk.Info{}, &writer{}, nil) }, "", "Name is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.newD()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind() != tt.want {
				t.Errorf("Kind = %q, want %q", d.Kind(), tt.want)
			}
		})
	}

	n := &plain{}
	d, err := dispatch.NewNotifier(info, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	configure := func(d *guest.Dispatcher) {
		t.Helper()
		if code, msg := call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{}`)}, nil); code != 0 {
			t.Fatalf("Configure = %d %q", code, msg)
		}
	}
	configure(d)
	if code, msg := call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), &notifierv1.NotifyRequest{Name: "web"}, &notifierv1.NotifyResponse{}); code != 0 || n.n.Load() != 1 {
		t.Errorf("Notify = %d %q, %d calls; want 0 and 1 call", code, msg, n.n.Load())
	}
	if code, _ := call(t, d, abi.Method(abi.Writer_Write_FullMethodName), &writerv1.WriteRequest{}, nil); code != uint32(sdk.CodeUnimplemented) {
		t.Errorf("Write on a notifier = %d, want UNIMPLEMENTED", code)
	}
	w := &writer{}
	if d, err = dispatch.NewWriter(info, w, nil); err != nil {
		t.Fatal(err)
	}
	configure(d)
	svid := ca.X509SVID(t, id)
	req, err := wire.CredentialSetToProto(&hostapi.CredentialSet{Name: "web", Credentials: hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := call(t, d, abi.Method(abi.Writer_Write_FullMethodName), req, &writerv1.WriteResponse{}); code != 0 || w.got == nil || !w.got.X509SVIDs[0].Certificates[0].Equal(svid.Certificates[0]) {
		t.Errorf("Write = %d %q; the writer got %+v", code, msg, w.got)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		impl    any
		service string
	}{
		{&plain{}, abi.Notifier_ServiceName},
		{&writer{}, abi.Writer_ServiceName},
		{&issuer{}, abi.Issuer_ServiceName},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			d := mustNew(t, tt.impl, nil)
			var resp pluginv1.DescribeResponse
			req := &pluginv1.DescribeRequest{HostServices: []string{"svidagent.host.v1.Logger"}}
			if code, msg := call(t, d, abi.Plugin_Describe_FullMethodName, req, &resp); code != 0 {
				t.Fatalf("Describe = %d %q", code, msg)
			}
			if resp.GetName() != "test" || resp.GetVersion() != "0.1.0" ||
				!reflect.DeepEqual(resp.GetServices(), []string{abi.Plugin_ServiceName, tt.service}) ||
				!reflect.DeepEqual(resp.GetCapabilities(), []string{"x.y"}) || string(resp.GetExampleConfigJson()) != `{"url":"a"}` {
				t.Errorf("Describe = %v", &resp)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		impl   any
		config string
		want   []string // fields with problems
	}{
		{"configurer valid", &notifier{}, `{"url":"http://x"}`, nil},
		{"configurer missing url", &notifier{}, `{}`, []string{"url"}},
		{"configurer not json", &notifier{}, `{`, []string{""}},
		{"no config: empty", &plain{}, ``, nil},
		{"no config: {}", &plain{}, ` { } `, nil},
		{"no config: null", &plain{}, `null`, nil},
		{"no config: given", &plain{}, `{"a":1}`, []string{""}},
		{"no config: garbage", &plain{}, `[`, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustNew(t, tt.impl, nil)
			var resp pluginv1.ValidateResponse
			if code, msg := call(t, d, abi.Method(abi.Plugin_Validate_FullMethodName), &pluginv1.ValidateRequest{ConfigJson: []byte(tt.config)}, &resp); code != 0 {
				t.Fatalf("Validate = %d %q", code, msg)
			}
			var got []string
			for _, p := range resp.GetProblems() {
				got = append(got, p.GetField())
				if p.GetMessage() == "" {
					t.Errorf("problem with %q has no message", p.GetField())
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems in %v, want %v (%v)", got, tt.want, resp.GetProblems())
			}
			if _, ok := tt.impl.(*plain); ok && len(got) > 0 && !strings.Contains(resp.GetProblems()[0].GetMessage(), "takes no configuration") {
				t.Errorf("message = %q", resp.GetProblems()[0].GetMessage())
			}
		})
	}
}

var notify = &notifierv1.NotifyRequest{Name: "web"}

func TestLifecycle(t *testing.T) {
	n := &notifier{}
	d := mustNew(t, n, nil)
	steps := []struct {
		name     string
		method   string
		req      proto.Message
		wantCode uint32
		wantMsg  string
	}{
		{"notify before configure", abi.Method(abi.Notifier_Notify_FullMethodName), notify, 9, "not configured"},
		{"invalid config", abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{}`)}, 3, "url: required"},
		{"still not configured", abi.Method(abi.Notifier_Notify_FullMethodName), notify, 9, "not configured"},
		{"configure", abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"a"}`)}, 0, ""},
		{"notify", abi.Method(abi.Notifier_Notify_FullMethodName), notify, 0, ""},
		{"reconfigure", abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"b"}`)}, 0, ""},
		{"notify again", abi.Notifier_Notify_FullMethodName, notify, 0, ""},
		{"close", abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, 0, ""},
		{"close is idempotent", abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, 0, ""},
		{"notify after close", abi.Method(abi.Notifier_Notify_FullMethodName), notify, 9, "closed"},
		{"configure after close", abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"c"}`)}, 9, "closed"},
	}
	for _, s := range steps {
		code, msg := call(t, d, s.method, s.req, nil)
		if code != s.wantCode || !strings.Contains(msg, s.wantMsg) {
			t.Errorf("%s: %d %q, want %d containing %q", s.name, code, msg, s.wantCode, s.wantMsg)
		}
	}
	if !reflect.DeepEqual(n.configs, []string{`{"url":"a"}`, `{"url":"b"}`}) {
		t.Errorf("Configure saw %q; an invalid config must not reach it", n.configs)
	}
	if len(n.events) != 2 || n.closed != 1 {
		t.Errorf("%d events, closed %d times; want 2, 1", len(n.events), n.closed)
	}
}

func TestConfigureError(t *testing.T) {
	n := &notifier{configErr: sdk.Error(sdk.CodeUnavailable, "vault is down")}
	d := mustNew(t, n, nil)
	code, msg := call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"a"}`)}, nil)
	if code != 14 || !strings.Contains(msg, "vault is down") {
		t.Errorf("Configure = %d %q, want 14", code, msg)
	}
	if code, _ := call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), notify, nil); code != 9 {
		t.Errorf("Notify after a failed Configure = %d, want 9", code)
	}
}

func TestNoConfig(t *testing.T) {
	p := &plain{}
	d := mustNew(t, p, nil)
	// ABI.md §6: kind calls before a successful Configure answer
	// FAILED_PRECONDITION, also for a plugin that takes no config.
	if code, msg := call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), notify, nil); code != 9 || !strings.Contains(msg, "not configured") {
		t.Errorf("Notify before Configure = %d %q, want 9 not configured", code, msg)
	}
	if code, _ := call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{}`)}, nil); code != 0 {
		t.Errorf("Configure({}) = %d, want 0", code)
	}
	if code, msg := call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), notify, nil); code != 0 {
		t.Errorf("Notify after Configure({}) = %d %q, want 0", code, msg)
	}
	if code, msg := call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"x":1}`)}, nil); code != 3 || !strings.Contains(msg, "takes no configuration") {
		t.Errorf("Configure({x:1}) = %d %q, want 3", code, msg)
	}
	if p.n.Load() != 1 {
		t.Errorf("Notify ran %d times, want 1", p.n.Load())
	}
}

func TestErrors(t *testing.T) {
	garbage := []byte{0xff, 0xff, 0xff}
	tests := []struct {
		name     string
		method   string
		payload  []byte
		wantCode uint32
		wantMsg  string
	}{
		{"panic", abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, &notifierv1.NotifyRequest{Name: "panic"}), 13, "panicked: boom in notify"},
		{"plain error", abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, &notifierv1.NotifyRequest{Name: "fail"}), 2, "endpoint said no"},
		{"coded error", abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, &notifierv1.NotifyRequest{Name: "unavailable"}), 14, "connection refused"},
		{"deadline", abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, &notifierv1.NotifyRequest{Name: "deadline"}), 4, "deadline exceeded"},
		{"field errors", abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, &notifierv1.NotifyRequest{Name: "fields"}), 3, "url: bad"},
		{"malformed notify", abi.Method(abi.Notifier_Notify_FullMethodName), garbage, 3, "decoding NotifyRequest"},
		{"malformed describe", abi.Method(abi.Plugin_Describe_FullMethodName), garbage, 3, "decoding DescribeRequest"},
		{"malformed validate", abi.Method(abi.Plugin_Validate_FullMethodName), garbage, 3, "decoding ValidateRequest"},
		{"malformed configure", abi.Method(abi.Plugin_Configure_FullMethodName), garbage, 3, "decoding ConfigureRequest"},
		{"unknown method", "svidagent.plugin.v9.Plugin/Describe", nil, 12, "does not implement"},
		{"empty method", "", nil, 12, "does not implement"},
		{"other kind", abi.Method(abi.Writer_Write_FullMethodName), nil, 12, "is a notifier"},
		{"other kind, slash", abi.Issuer_Issue_FullMethodName, nil, 12, "is a notifier"},
	}
	d := mustNew(t, &notifier{}, nil)
	configure(t, d, `{"url":"a"}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg, resp := d.Handle(context.Background(), tt.method, tt.payload)
			if code != tt.wantCode || !strings.Contains(msg, tt.wantMsg) || len(resp) != 0 {
				t.Errorf("Handle = %d %q (%d bytes), want %d containing %q", code, msg, len(resp), tt.wantCode, tt.wantMsg)
			}
		})
	}
	// The dispatcher still works after all that.
	if code, msg := call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), notify, nil); code != 0 {
		t.Errorf("Notify = %d %q", code, msg)
	}
}

// TestMalformedKindPayloads feeds each kind truncated and corrupted
// versions of a real request: never a panic, always 3.
func TestMalformedKindPayloads(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	svid := ca.X509SVID(t, id)
	wr, err := wire.CredentialSetToProto(&hostapi.CredentialSet{Name: "web", TrustDomain: id.TrustDomain(), Credentials: hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		impl   any
		method string
		bad    []byte
	}{
		{"writer: truncated", &writer{}, abi.Method(abi.Writer_Write_FullMethodName), marshal(t, wr)[:40]},
		{"writer: garbage cert", &writer{}, abi.Method(abi.Writer_Write_FullMethodName), marshal(t, &writerv1.WriteRequest{X509Svids: []*pluginv1.X509SVID{{SpiffeId: id.String(), CertChain: [][]byte{{1}}}}})},
		{"writer: no key", &writer{}, abi.Method(abi.Writer_Write_FullMethodName), marshal(t, &writerv1.WriteRequest{X509Svids: []*pluginv1.X509SVID{{SpiffeId: id.String(), CertChain: wr.X509Svids[0].CertChain}}})},
		{"issuer: bad id", &issuer{t: t, ca: ca}, abi.Method(abi.Issuer_Issue_FullMethodName), marshal(t, &issuerv1.IssueRequest{SpiffeId: "http://x"})},
		{"issuer: x509 without csr", &issuer{t: t, ca: ca}, abi.Method(abi.Issuer_Issue_FullMethodName), marshal(t, &issuerv1.IssueRequest{SpiffeId: id.String(), X509: true})},
		{"notifier: truncated", &plain{}, abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, &notifierv1.NotifyRequest{Name: "web", Paths: []string{"/a/b/c"}})[:8]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustNew(t, tt.impl, nil)
			// Before Configure the precondition comes first (ABI.md §6).
			if code, msg, _ := d.Handle(context.Background(), tt.method, tt.bad); code != 9 {
				t.Errorf("Handle before Configure = %d %q, want 9", code, msg)
			}
			mustConfigure(t, d)
			code, msg, _ := d.Handle(context.Background(), tt.method, tt.bad)
			if code != 3 {
				t.Errorf("Handle = %d %q, want 3", code, msg)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	svid := ca.X509SVID(t, id)
	in := &hostapi.CredentialSet{Name: "web", TrustDomain: id.TrustDomain(), Changed: hostapi.ChangedX509,
		Credentials: hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}, X509Bundles: x509bundle.NewSet(ca.X509Bundle())}}
	req, err := wire.CredentialSetToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{}
	d := mustNew(t, w, nil)
	mustConfigure(t, d)
	var resp writerv1.WriteResponse
	if code, msg := call(t, d, abi.Method(abi.Writer_Write_FullMethodName), req, &resp); code != 0 {
		t.Fatalf("Write = %d %q", code, msg)
	}
	if !reflect.DeepEqual(resp.GetPaths(), []string{"/out/svid.pem"}) {
		t.Errorf("paths = %q", resp.GetPaths())
	}
	got := w.got.X509SVIDs[0]
	if w.got.Name != "web" || got.ID != id || !got.Certificates[0].Equal(svid.Certificates[0]) || got.PrivateKey == nil ||
		!got.PrivateKey.Public().(*ecdsa.PublicKey).Equal(svid.PrivateKey.Public()) {
		t.Errorf("the writer got %+v, want the set with its key", w.got)
	}
}

func TestIssue(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: nil}, key)
	if err != nil {
		t.Fatal(err)
	}
	req := wire.IssueRequestToProto(&hostapi.IssueRequest{SPIFFEID: id, X509: true, CSR: csr})
	tests := []struct {
		name     string
		impl     *issuer
		caps     []string
		wantCode uint32
		wantKey  bool
	}{
		{"signs the csr", &issuer{t: t, ca: ca}, nil, 0, false},
		{"own key, undeclared", &issuer{t: t, ca: ca, ownKey: true}, nil, 13, false},
		{"own key, declared", &issuer{t: t, ca: ca, ownKey: true}, []string{abi.CapabilityIssuerReturnsKeys}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := dispatch.New(sdk.Info{Name: "iss", Capabilities: tt.caps}, tt.impl, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustConfigure(t, d)
			var resp issuerv1.IssueResponse
			code, msg := call(t, d, abi.Method(abi.Issuer_Issue_FullMethodName), req, &resp)
			if code != tt.wantCode {
				t.Fatalf("Issue = %d %q, want %d", code, msg, tt.wantCode)
			}
			if code != 0 {
				return
			}
			creds, err := wire.IssueResponseToCredentials(&resp, &hostapi.IssueRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if hasKey := creds.X509SVIDs[0].PrivateKey != nil; hasKey != tt.wantKey {
				t.Errorf("response carries a key: %v, want %v", hasKey, tt.wantKey)
			}
			if !tt.wantKey && !creds.X509SVIDs[0].Certificates[0].PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
				t.Error("the chain does not certify the CSR's key")
			}
		})
	}
}

// TestNotifierNeverSeesKeys checks both halves of "a notifier never
// receives key material": what the host encodes has none, and even a
// payload smuggling a key in an unknown field reaches the plugin without
// it.
func TestNotifierNeverSeesKeys(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	svid := ca.X509SVID(t, id)
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	leaf := svid.Certificates[0]
	ev := &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509, Time: time.Now(),
		X509:  []hostapi.X509Identity{{SPIFFEID: id.String(), Serial: leaf.SerialNumber.Text(16), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}},
		Paths: []string{"/run/svid/key.pem"}}
	payload := marshal(t, wire.RotationEventToProto(ev))
	if bytes.Contains(payload, keyDER) || bytes.Contains(payload, []byte("PRIVATE KEY")) {
		t.Fatal("the NotifyRequest bytes contain the private key")
	}
	// A hostile or buggy host smuggles the key in unknown fields.
	smuggled := protowire.AppendTag(bytes.Clone(payload), 99, protowire.BytesType)
	smuggled = protowire.AppendBytes(smuggled, keyDER)
	smuggled = protowire.AppendTag(smuggled, 100, protowire.BytesType)
	smuggled = protowire.AppendBytes(smuggled, keyPEM)

	rec := &recorder{}
	d := mustNew(t, rec, nil)
	mustConfigure(t, d)
	if code, msg, _ := d.Handle(context.Background(), abi.Method(abi.Notifier_Notify_FullMethodName), smuggled); code != 0 {
		t.Fatalf("Notify = %d %q", code, msg)
	}
	got := fmt.Sprintf("%#v", *rec.ev)
	if strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, fmt.Sprintf("%#v", keyDER[:16])) {
		t.Error("the notifier received the smuggled key")
	}
	if rec.ev.X509[0].Serial != leaf.SerialNumber.Text(16) || rec.ev.Paths[0] != "/run/svid/key.pem" {
		t.Errorf("the event did not arrive intact: %+v", rec.ev)
	}
	// And by construction: nothing in a RotationEvent can hold bytes or a
	// key.
	assertNoKeyFields(t, reflect.TypeOf(hostapi.RotationEvent{}), "RotationEvent")
}

type recorder struct{ ev *hostapi.RotationEvent }

func (r *recorder) Notify(_ context.Context, ev *hostapi.RotationEvent) error { r.ev = ev; return nil }

func assertNoKeyFields(t *testing.T, typ reflect.Type, path string) {
	t.Helper()
	switch typ.Kind() {
	case reflect.Struct:
		if typ == reflect.TypeOf(time.Time{}) {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			assertNoKeyFields(t, f.Type, path+"."+f.Name)
		}
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Uint8 {
			t.Errorf("%s is a byte slice; a notifier must not receive raw bytes", path)
		}
		assertNoKeyFields(t, typ.Elem(), path+"[]")
	case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan:
		t.Errorf("%s is a %s; a notifier's event must be plain data", path, typ.Kind())
	}
}

func TestHost(t *testing.T) {
	tests := []struct {
		name       string
		code       uint32
		wantCode   uint32
		notAllowed bool
	}{
		{"allowed", 0, 0, false},
		{"not allowed", 7, 7, true},
		{"host down", 14, 14, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{code: tt.code}
			d := mustNew(t, &notifier{}, h.call)
			configure(t, d, `{"url":"a"}`)
			code, msg := call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), &notifierv1.NotifyRequest{Name: "http"}, nil)
			if code != tt.wantCode {
				t.Fatalf("Notify = %d %q, want %d", code, msg, tt.wantCode)
			}
			if !reflect.DeepEqual(h.calls, []string{abi.HTTP_Request_FullMethodName}) {
				t.Errorf("host calls = %q", h.calls)
			}
		})
	}
	// errors.Is on what plugin code sees.
	h := &fakeHost{code: 7}
	host := hostOf(t, h.call)
	_, err := host.HTTP(context.Background(), &sdk.HTTPRequest{Method: "POST", URL: "http://h/x", Body: []byte("hi")})
	if !errors.Is(err, sdk.ErrNotAllowed) || sdk.CodeOf(err) != sdk.CodePermissionDenied {
		t.Errorf("err = %v (code %v), want ErrNotAllowed", err, sdk.CodeOf(err))
	}
	h.code = 0
	resp, err := host.HTTP(context.Background(), &sdk.HTTPRequest{Method: "POST", URL: "http://h/x", Body: []byte("hi")})
	if err != nil || resp.StatusCode != 204 || resp.Header.Get("x-a") != "1" {
		t.Errorf("HTTP = %+v, %v", resp, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := host.HTTP(ctx, &sdk.HTTPRequest{URL: "http://h/x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("HTTP with a canceled context = %v", err)
	}
	host.Log(slog.LevelWarn, "hello", "k", 1, slog.Group("g", "a", true), slog.String("s", "v"))
	want := &hostv1.LogRequest{Level: 4, Message: "hello", Attrs: []string{"k", "1", "g.a", "true", "s", "v"}}
	if len(h.logs) != 1 || !proto.Equal(h.logs[0], want) {
		t.Errorf("logs = %v, want %v", h.logs, want)
	}
}

// hostOf returns the sdk.Host plugin code of a dispatcher over call sees.
func hostOf(t *testing.T, call guest.HostCaller) sdk.Host {
	t.Helper()
	c := &capture{}
	d := mustNew(t, c, call)
	mustConfigure(t, d)
	if code, msg, _ := d.Handle(context.Background(), abi.Method(abi.Notifier_Notify_FullMethodName), nil); code != 0 {
		t.Fatalf("Notify = %d %q", code, msg)
	}
	return c.host
}

type capture struct{ host sdk.Host }

func (c *capture) Notify(ctx context.Context, _ *hostapi.RotationEvent) error {
	c.host = sdk.HostFromContext(ctx)
	return nil
}

func TestNoHost(t *testing.T) {
	host := hostOf(t, nil)
	host.Log(slog.LevelInfo, "dropped")
	if _, err := host.HTTP(context.Background(), &sdk.HTTPRequest{URL: "http://x"}); !errors.Is(err, sdk.ErrNotAllowed) {
		t.Errorf("HTTP without a host = %v, want ErrNotAllowed", err)
	}
}

// TestHammer runs Notify, Validate, Configure and Describe concurrently
// under -race.
func TestHammer(t *testing.T) {
	n := &notifier{}
	d := mustNew(t, n, (&fakeHost{}).call)
	configure(t, d, `{"url":"a"}`)
	var wg sync.WaitGroup
	var failures atomic.Int32
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				var code uint32
				switch (g + i) % 4 {
				case 0:
					code, _, _ = d.Handle(context.Background(), abi.Method(abi.Plugin_Configure_FullMethodName), marshal(t, &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"b"}`)}))
				case 1:
					code, _, _ = d.Handle(context.Background(), abi.Method(abi.Plugin_Validate_FullMethodName), marshal(t, &pluginv1.ValidateRequest{ConfigJson: []byte(`{"url":"b"}`)}))
				case 2:
					code, _, _ = d.Handle(context.Background(), abi.Method(abi.Plugin_Describe_FullMethodName), nil)
				default:
					code, _, _ = d.Handle(context.Background(), abi.Method(abi.Notifier_Notify_FullMethodName), marshal(t, notify))
				}
				if code != 0 {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d calls failed", failures.Load())
	}
	if got := len(n.events); got != 400 {
		t.Errorf("%d events, want 400", got)
	}
	if got := n.configured.Load(); got != 401 {
		t.Errorf("%d configures, want 401", got)
	}
}

// TestNilImplementation: a nil plugin, passed as any kind's interface, is
// refused by name.
func TestNilImplementation(t *testing.T) {
	info := sdk.Info{Name: "nil"}
	var w hostapi.Writer
	var n hostapi.Notifier
	var i hostapi.Issuer
	for name, f := range map[string]func() error{
		"New":         func() error { _, err := dispatch.New(info, nil, nil); return err },
		"NewWriter":   func() error { _, err := dispatch.NewWriter(info, w, nil); return err },
		"NewNotifier": func() error { _, err := dispatch.NewNotifier(info, n, nil); return err },
		"NewIssuer":   func() error { _, err := dispatch.NewIssuer(info, i, nil); return err },
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "implementation is nil") {
			t.Errorf("%s(nil) = %v, want the nil implementation named", name, err)
		}
	}
}
