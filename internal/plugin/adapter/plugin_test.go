package adapter_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/wire"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// describing returns a conn whose plugin implements services, with
// Validate, Configure and Close answering OK.
func describing(services []string, caps ...string) *fakeConn {
	return newFakeConn().
		handle(adapter.MethodDescribe, func(context.Context, []byte) ([]byte, error) {
			return reply(&pluginv1.DescribeResponse{Name: "test-plugin", Version: "1.0.0", Services: services, Capabilities: caps})
		}).
		handle(adapter.MethodValidate, ok).
		handle(adapter.MethodConfigure, ok).
		handle(adapter.MethodClose, ok)
}

var (
	notifierV1 = []string{adapter.ServicePlugin, adapter.ServiceNotifier}
	writerV1   = []string{adapter.ServicePlugin, adapter.ServiceWriter}
	issuerV1   = []string{adapter.ServicePlugin, adapter.ServiceIssuer}
)

func open(t *testing.T, conn adapter.Conn, kind hostapi.Kind) *adapter.Plugin {
	t.Helper()
	p, err := adapter.Open(context.Background(), conn, adapter.Settings{Kind: kind, Name: "x", ConfigJSON: []byte(`{"url":"http://h"}`)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestOpenSequence(t *testing.T) {
	conn := describing(notifierV1)
	p, err := adapter.Open(context.Background(), conn, adapter.Settings{
		Kind: hostapi.KindNotifier, Name: "webhook", ConfigJSON: []byte(`{"url":"http://h"}`),
		HostVersion: "1.2.3", HostServices: []string{adapter.ServiceLogger, adapter.ServiceHTTP},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{adapter.MethodDescribe, adapter.MethodValidate, adapter.MethodConfigure}
	if got := conn.methods(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("calls %v, want %v", got, want)
	}
	var dr pluginv1.DescribeRequest
	if err := proto.Unmarshal(conn.lastReq(adapter.MethodDescribe), &dr); err != nil {
		t.Fatal(err)
	}
	if dr.HostVersion != "1.2.3" || strings.Join(dr.HostServices, ",") != adapter.ServiceLogger+","+adapter.ServiceHTTP {
		t.Errorf("DescribeRequest = %v", &dr)
	}
	var cr pluginv1.ConfigureRequest
	if err := proto.Unmarshal(conn.lastReq(adapter.MethodConfigure), &cr); err != nil {
		t.Fatal(err)
	}
	if string(cr.ConfigJson) != `{"url":"http://h"}` || cr.Instance != "webhook" {
		t.Errorf("ConfigureRequest = %v", &cr)
	}
	info := p.Info()
	if info.Name != "test-plugin" || info.Version != "1.0.0" || info.Service != adapter.ServiceNotifier {
		t.Errorf("Info = %+v", info)
	}
	if p.Notifier() == nil || p.Writer() != nil || p.Issuer() != nil {
		t.Errorf("a notifier plugin: Notifier %v, Writer %v, Issuer %v", p.Notifier(), p.Writer(), p.Issuer())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := conn.count(adapter.MethodClose); n != 1 {
		t.Errorf("plugin Close called %d times, want 1", n)
	}
	if n := conn.closeCount(); n != 1 {
		t.Errorf("conn closed %d times, want 1", n)
	}
	if err := p.Notifier().Notify(context.Background(), &hostapi.RotationEvent{}); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("Notify after Close = %v, want ErrClosed", err)
	}
}

func TestNegotiation(t *testing.T) {
	tests := []struct {
		name     string
		kind     hostapi.Kind
		services []string
		wantErr  string // empty: success
	}{
		{name: "notifier v1", kind: hostapi.KindNotifier, services: notifierV1},
		{name: "v1 beside v2 picks v1", kind: hostapi.KindNotifier, services: append([]string{"svidagent.plugin.notifier.v2.Notifier"}, notifierV1...)},
		{name: "notifier v2 only", kind: hostapi.KindNotifier,
			services: []string{adapter.ServicePlugin, "svidagent.plugin.notifier.v2.Notifier"},
			wantErr:  `plugin "x" implements svidagent.plugin.notifier.v2.Notifier; this agent supports svidagent.plugin.notifier.v1.Notifier`},
		{name: "plugin service v2 only", kind: hostapi.KindNotifier,
			services: []string{"svidagent.plugin.v2.Plugin", adapter.ServiceNotifier},
			wantErr:  `plugin "x" implements svidagent.plugin.v2.Plugin; this agent supports svidagent.plugin.v1.Plugin`},
		{name: "writer used as notifier", kind: hostapi.KindNotifier, services: writerV1,
			wantErr: `plugin "x" is not a notifier (it is a writer`},
		{name: "nothing", kind: hostapi.KindIssuer, services: nil,
			wantErr: `plugin "x" implements no services; this agent supports svidagent.plugin.v1.Plugin`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := describing(tt.services)
			p, err := adapter.Open(context.Background(), conn, adapter.Settings{Kind: tt.kind, Name: "x"})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.Info().Service != adapter.ServiceNotifier {
					t.Errorf("negotiated %q", p.Info().Service)
				}
				_ = p.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open error = %v, want it to contain %q", err, tt.wantErr)
			}
			if n := conn.count(adapter.MethodConfigure); n != 0 {
				t.Errorf("an incompatible plugin was configured")
			}
			if n := conn.closeCount(); n != 1 {
				t.Errorf("conn closed %d times after refusal, want 1", n)
			}
		})
	}
}

func TestOpenFailuresClose(t *testing.T) {
	tests := []struct {
		name        string
		conn        *fakeConn
		wantErr     string
		wantFields  []string
		pluginClose int
	}{
		{
			name: "describe fails",
			conn: describing(notifierV1).handle(adapter.MethodDescribe, func(context.Context, []byte) ([]byte, error) {
				return nil, status.Error(codes.Internal, "trap")
			}),
			wantErr: "describing plugin", pluginClose: 0,
		},
		{
			name: "validate problems",
			conn: describing(notifierV1).handle(adapter.MethodValidate, func(context.Context, []byte) ([]byte, error) {
				return reply(&pluginv1.ValidateResponse{Problems: []*pluginv1.FieldError{
					{Field: "url", Message: "url is required"}, {Field: "headers.x", Message: "bad header"},
				}})
			}),
			wantErr: "url: url is required", wantFields: []string{"url", "headers.x"}, pluginClose: 1,
		},
		{
			name: "configure fails",
			conn: describing(notifierV1).handle(adapter.MethodConfigure, func(context.Context, []byte) ([]byte, error) {
				return nil, status.Error(codes.InvalidArgument, "cannot parse url")
			}),
			wantErr: "configuring: rpc error: code = InvalidArgument desc = cannot parse url", pluginClose: 1,
		},
		{
			name: "configure and close fail",
			conn: describing(notifierV1).
				handle(adapter.MethodConfigure, func(context.Context, []byte) ([]byte, error) { return nil, status.Error(codes.Internal, "boom") }).
				handle(adapter.MethodClose, func(context.Context, []byte) ([]byte, error) { return nil, status.Error(codes.Internal, "boom") }),
			wantErr: "configuring", pluginClose: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := adapter.Open(context.Background(), tt.conn, adapter.Settings{Kind: hostapi.KindNotifier, Name: "x"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open error = %v, want %q", err, tt.wantErr)
			}
			if tt.wantFields != nil {
				fes := hostapi.AsFieldErrors(err)
				var got []string
				for _, fe := range fes {
					got = append(got, fe.Field)
				}
				if strings.Join(got, ",") != strings.Join(tt.wantFields, ",") {
					t.Errorf("field errors %v, want fields %v", got, tt.wantFields)
				}
			}
			if n := tt.conn.count(adapter.MethodClose); n != tt.pluginClose {
				t.Errorf("plugin Close called %d times, want %d", n, tt.pluginClose)
			}
			if n := tt.conn.closeCount(); n != 1 {
				t.Errorf("conn closed %d times, want 1", n)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	conn := describing(notifierV1).handle(adapter.MethodValidate, func(_ context.Context, req []byte) ([]byte, error) {
		var vr pluginv1.ValidateRequest
		if err := proto.Unmarshal(req, &vr); err != nil {
			return nil, err
		}
		if bytes.Contains(vr.ConfigJson, []byte("ftp:")) {
			return reply(&pluginv1.ValidateResponse{Problems: []*pluginv1.FieldError{{Field: "url", Message: "use http or https"}}})
		}
		return nil, nil
	})
	p, err := adapter.Negotiate(context.Background(), conn, adapter.Settings{Kind: hostapi.KindNotifier, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Validate(context.Background(), []byte(`{"url":"http://a"}`)); err != nil {
		t.Errorf("valid config: %v", err)
	}
	err = p.Validate(context.Background(), []byte(`{"url":"ftp://a"}`))
	fes := hostapi.AsFieldErrors(err)
	if len(fes) != 1 || fes[0].Field != "url" || fes[0].Message != "use http or https" {
		t.Errorf("Validate = %v, want one field error for url", err)
	}
	if n := conn.count(adapter.MethodConfigure); n != 0 {
		t.Errorf("Negotiate+Validate configured the plugin")
	}
}

// TestNotifyCarriesNoKeys encodes a rotation event made from a real
// credential set and checks, on the bytes that cross the boundary, that
// neither the private key nor the JWT appears, and that the message type
// has no field that could carry them.
func TestNotifyCarriesNoKeys(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	svid := ca.X509SVID(t, id)
	jwt := ca.JWTSVID(t, id, []string{"api"}, time.Minute)
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	ev := &hostapi.RotationEvent{
		Name: "web", Reason: hostapi.ChangedX509 | hostapi.ChangedJWTSVID, Initial: true, Time: time.Now(),
		X509:  []hostapi.X509Identity{{SPIFFEID: id.String(), Serial: svid.Certificates[0].SerialNumber.Text(16), NotAfter: svid.Certificates[0].NotAfter}},
		JWT:   []hostapi.JWTIdentity{{SPIFFEID: id.String(), Audiences: jwt.Audience, Expiry: jwt.Expiry, FileName: "api.token"}},
		Paths: []string{"/out/svid.pem", "/out/svid_key.pem"},
	}
	conn := describing(notifierV1).handle(adapter.MethodNotify, ok)
	p := open(t, conn, hostapi.KindNotifier)
	if err := p.Notifier().Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	raw := conn.lastReq(adapter.MethodNotify)
	if len(raw) == 0 {
		t.Fatal("no Notify call recorded")
	}
	if bytes.Contains(raw, keyDER) || bytes.Contains(raw, svid.Certificates[0].Raw) || bytes.Contains(raw, []byte(jwt.Marshal())) {
		t.Error("the encoded NotifyRequest contains key, certificate or token bytes")
	}
	var got notifierv1.NotifyRequest
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "web" || len(got.X509) != 1 || got.X509[0].Serial != ev.X509[0].Serial || !got.Initial {
		t.Errorf("NotifyRequest = %v", &got)
	}
	// No field of the message, at any depth, is bytes or named like
	// key material.
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			name := string(f.Name())
			if f.Kind() == protoreflect.BytesKind || strings.Contains(name, "key") || strings.Contains(name, "token") {
				t.Errorf("%s.%s could carry key material", md.FullName(), name)
			}
			if f.Message() != nil {
				walk(f.Message())
			}
		}
	}
	walk(got.ProtoReflect().Descriptor())
}

func TestWriterGetsKeys(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	svid := ca.X509SVID(t, spiffeid.RequireFromString("spiffe://example.org/web"))
	conn := describing(writerV1).handle(adapter.MethodWrite, func(context.Context, []byte) ([]byte, error) {
		return reply(&writerv1.WriteResponse{Paths: []string{"/out/a", "/out/b"}})
	})
	p := open(t, conn, hostapi.KindWriter)
	res, err := p.Writer().Write(context.Background(), &hostapi.CredentialSet{
		Name: "web", TrustDomain: ca.TrustDomain(), Changed: hostapi.ChangedX509,
		Credentials: hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Paths, ",") != "/out/a,/out/b" {
		t.Errorf("paths %v", res.Paths)
	}
	var wr writerv1.WriteRequest
	if err := proto.Unmarshal(conn.lastReq(adapter.MethodWrite), &wr); err != nil {
		t.Fatal(err)
	}
	set, err := wire.CredentialSetFromProto(&wr)
	if err != nil {
		t.Fatal(err)
	}
	if set.X509SVIDs[0].PrivateKey == nil {
		t.Error("the writer got no private key")
	}
}

func TestIssuerKeys(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	svid := ca.X509SVID(t, id)
	tests := []struct {
		name    string
		caps    []string
		withKey bool
		wantErr string
		wantKey bool
	}{
		{name: "signs the CSR", withKey: false},
		{name: "returns a key undeclared", withKey: true, wantErr: `does not declare the capability "issuer.returns_keys"`},
		{name: "returns a key declared", caps: []string{adapter.CapabilityIssuerReturnsKeys}, withKey: true, wantKey: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := describing(issuerV1, tt.caps...).handle(adapter.MethodIssue, func(_ context.Context, req []byte) ([]byte, error) {
				var ir issuerv1.IssueRequest
				if err := proto.Unmarshal(req, &ir); err != nil {
					return nil, err
				}
				if len(ir.Csr) == 0 {
					return nil, status.Error(codes.InvalidArgument, "no csr")
				}
				resp, err := wire.CredentialsToIssueResponse(&hostapi.Credentials{
					X509SVIDs: []*x509svid.SVID{svid}, X509Bundles: x509bundle.NewSet(ca.X509Bundle()),
				}, tt.withKey)
				if err != nil {
					return nil, err
				}
				return reply(resp)
			})
			p := open(t, conn, hostapi.KindIssuer)
			creds, err := p.Issuer().Issue(context.Background(), &hostapi.IssueRequest{SPIFFEID: id, X509: true, CSR: []byte("csr")})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Issue error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := creds.X509SVIDs[0].PrivateKey != nil; got != tt.wantKey {
				t.Errorf("key returned %v, want %v", got, tt.wantKey)
			}
			if creds.X509SVIDs[0].ID != id || creds.X509Bundles == nil {
				t.Errorf("credentials %+v", creds)
			}
		})
	}
}

func TestBreakerOpens(t *testing.T) {
	var mu sync.Mutex
	fail := true
	conn := describing(notifierV1).handle(adapter.MethodNotify, func(context.Context, []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, status.Error(codes.Unavailable, "webhook down")
		}
		return nil, nil
	})
	p, err := adapter.Open(context.Background(), conn, adapter.Settings{Kind: hostapi.KindNotifier, Name: "x", BreakerCooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	n := p.Notifier()
	for i := 0; i < adapter.DefaultBreakerThreshold; i++ {
		if err := n.Notify(context.Background(), &hostapi.RotationEvent{}); err == nil || errors.Is(err, adapter.ErrBreakerOpen) {
			t.Fatalf("call %d: %v, want the plugin's own error", i, err)
		}
	}
	err = n.Notify(context.Background(), &hostapi.RotationEvent{})
	if !errors.Is(err, adapter.ErrBreakerOpen) || !strings.Contains(err.Error(), "webhook down") || !strings.Contains(err.Error(), "5 consecutive failed calls") {
		t.Fatalf("6th call: %v, want the breaker open, naming the last error", err)
	}
	if got := conn.count(adapter.MethodNotify); got != adapter.DefaultBreakerThreshold {
		t.Errorf("the plugin was called %d times, want %d: an open breaker must not call it", got, adapter.DefaultBreakerThreshold)
	}
	st := p.Status()
	if st.State != adapter.BreakerOpen || st.ConsecutiveFailures != 5 || !strings.Contains(st.LastError, "webhook down") || st.RetryAt.IsZero() {
		t.Errorf("Status = %+v", st)
	}
}

func TestCallerCancelDoesNotCount(t *testing.T) {
	conn := describing(notifierV1).handle(adapter.MethodNotify, func(ctx context.Context, _ []byte) ([]byte, error) {
		return nil, status.FromContextError(ctx.Err()).Err()
	})
	p := open(t, conn, hostapi.KindNotifier)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 2*adapter.DefaultBreakerThreshold; i++ {
		if err := p.Notifier().Notify(ctx, &hostapi.RotationEvent{}); errors.Is(err, adapter.ErrBreakerOpen) {
			t.Fatalf("call %d: the breaker opened on calls the caller cancelled", i)
		}
	}
	if st := p.Status(); st.State != adapter.BreakerClosed || st.ConsecutiveFailures != 0 {
		t.Errorf("Status = %+v", st)
	}
}

// TestHammer runs calls, Status and Close concurrently under -race.
func TestHammer(t *testing.T) {
	var mu sync.Mutex
	i := 0
	conn := describing(notifierV1).handle(adapter.MethodNotify, func(context.Context, []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		i++
		if i%3 == 0 {
			return nil, status.Error(codes.Unavailable, "flaky")
		}
		return nil, nil
	})
	p, err := adapter.Open(context.Background(), conn, adapter.Settings{Kind: hostapi.KindNotifier, Name: "x", BreakerThreshold: 2, BreakerCooldown: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				_ = p.Notifier().Notify(context.Background(), &hostapi.RotationEvent{Name: "web"})
				_ = p.Status()
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = p.Close() }()
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := conn.count(adapter.MethodClose); n != 1 {
		t.Errorf("plugin Close called %d times, want 1", n)
	}
}

// mappingConn is a fakeConn whose plugin reports paths in a space of its
// own, as a WASM writer does.
type mappingConn struct{ *fakeConn }

func (mappingConn) HostPaths(paths []string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		rest, ok := strings.CutPrefix(p, "/out/")
		if !ok {
			return nil, fmt.Errorf("path %q is not under /out", p)
		}
		out[i] = "/host/dir/" + rest
	}
	return out, nil
}

func TestWriterPathsInHostSpace(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	svid := ca.X509SVID(t, spiffeid.RequireFromString("spiffe://example.org/web"))
	set := &hostapi.CredentialSet{
		Name: "web", TrustDomain: ca.TrustDomain(), Changed: hostapi.ChangedX509,
		Credentials: hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}},
	}
	for _, tt := range []struct {
		reported []string
		want     string
		wantErr  string
	}{
		{reported: []string{"/out/a", "/out/b"}, want: "/host/dir/a,/host/dir/b"},
		{reported: []string{"/out/a", "/etc/passwd"}, wantErr: `"/etc/passwd" is not under /out`},
	} {
		conn := describing(writerV1).handle(adapter.MethodWrite, func(context.Context, []byte) ([]byte, error) {
			return reply(&writerv1.WriteResponse{Paths: tt.reported})
		})
		p := open(t, mappingConn{conn}, hostapi.KindWriter)
		res, err := p.Writer().Write(context.Background(), set)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Write reporting %v = %v, %v; want an error containing %q", tt.reported, res, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(res.Paths, ",") != tt.want {
			t.Errorf("Write reporting %v = %v, %v; want %s", tt.reported, res, err, tt.want)
		}
	}
}
