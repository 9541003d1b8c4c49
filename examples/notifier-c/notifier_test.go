package notifierc_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

// wasmPath is the module build.sh built for this test process.
var wasmPath string

// TestMain builds notifier.wasm once with build.sh, the documented build.
// A missing toolchain fails the run with the apt-get line: never a skip.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "notifier-c")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wasmPath = filepath.Join(dir, "notifier.wasm")
	out, err := exec.Command("./build.sh", wasmPath).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building notifier.wasm with build.sh: %v\n%s", err, out)
		fmt.Fprintln(os.Stderr, "install the toolchain: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32")
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// recorder is a slog.Handler that keeps every record, with the attributes
// of the logger it was derived from.
type recorder struct {
	attrs []slog.Attr
	mu    *sync.Mutex
	recs  *[]rec
}

type rec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newRecorder() *recorder { return &recorder{mu: &sync.Mutex{}, recs: &[]rec{}} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, x slog.Record) error {
	a := map[string]string{}
	for _, at := range r.attrs {
		a[at.Key] = at.Value.String()
	}
	x.Attrs(func(at slog.Attr) bool { a[at.Key] = at.Value.String(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.recs = append(*r.recs, rec{x.Level, x.Message, a})
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr{}, r.attrs...), as...)
	return &c
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) records() []rec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rec{}, *r.recs...)
}

// counters is a services.CounterSink that records what it was given.
type counters struct {
	mu   sync.Mutex
	adds []string
}

func (c *counters) AddPluginCounter(plugin, name, help string, labels map[string]string, delta float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adds = append(c.adds, fmt.Sprintf("%s %s %v %g", plugin, name, labels, delta))
	return nil
}

func (c *counters) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string{}, c.adds...)
}

type opened struct {
	wasm     *wasmrt.Plugin
	plugin   *adapter.Plugin
	log      *recorder
	metrics  *counters
	restarts *atomic.Int32
}

// open opens the C module with the real runtime and adapter, as the agent
// does for `plugin "c" { wasm = ... }`.
func open(t *testing.T, configJSON string) *opened {
	t.Helper()
	o := &opened{log: newRecorder(), metrics: &counters{}, restarts: &atomic.Int32{}}
	sum, err := wasmrt.HashFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o.wasm, err = wasmrt.Open(ctx, wasmrt.Config{
		Path: wasmPath, SHA256: sum, Kind: hostapi.KindNotifier, Name: "c",
		Logger: slog.New(o.log), Metrics: o.metrics,
		OnRestart: func() { o.restarts.Add(1) },
	})
	if err != nil {
		t.Fatalf("opening the module: %v", err)
	}
	o.plugin, err = adapter.Open(ctx, o.wasm, adapter.Settings{
		Kind: hostapi.KindNotifier, Name: "c", ConfigJSON: []byte(configJSON),
		HostVersion: "test", HostServices: o.wasm.HostServices(),
	})
	if err != nil {
		t.Fatalf("opening the plugin: %v", err)
	}
	t.Cleanup(func() {
		if err := o.plugin.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return o
}

// svid mints a real X.509-SVID and returns its identity as a notifier sees
// it.
func svid(t *testing.T, id string) hostapi.X509Identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: serial, URIs: []*url.URL{u}, NotBefore: now, NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return hostapi.X509Identity{SPIFFEID: cert.URIs[0].String(), Serial: cert.SerialNumber.Text(16), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
}

func TestDescribe(t *testing.T) {
	o := open(t, `{}`)
	info := o.plugin.Info()
	want := adapter.Info{Name: "notifier-c", Version: "0.1.0",
		Services: []string{adapter.ServicePlugin, adapter.ServiceNotifier}, Service: adapter.ServiceNotifier}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("Describe = %+v, want %+v", info, want)
	}
	b, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("notifier.wasm: %d bytes (%.1f KB)", len(b), float64(len(b))/1000)
}

func TestNotify(t *testing.T) {
	o := open(t, `{"prefix": "[edge] "}`)
	web, db := svid(t, "spiffe://example.org/web"), svid(t, "spiffe://example.org/db")
	ev := &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509 | hostapi.ChangedJWTBundle, Initial: true, Time: time.Now(),
		X509:  []hostapi.X509Identity{web, db},
		JWT:   []hostapi.JWTIdentity{{SPIFFEID: "spiffe://example.org/web", Audiences: []string{"api"}, Expiry: time.Now().Add(time.Minute), FileName: "api.token"}},
		Paths: []string{"/run/svid/svid.pem", "/run/svid/svid_key.pem"}}
	if err := o.plugin.Notifier().Notify(context.Background(), ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	var lines []string
	for _, r := range o.log.records() {
		if r.attrs["plugin"] != "c" {
			t.Errorf("record %q is not tagged plugin=c: %v", r.msg, r.attrs)
		}
		if r.level != slog.LevelInfo {
			t.Errorf("record %q at %v, want INFO", r.msg, r.level)
		}
		lines = append(lines, r.msg)
	}
	want := []string{
		`[edge] rotated spiffe://example.org/web serial ` + web.Serial + ` (svid "web", x509,jwt_bundle)`,
		`[edge] rotated spiffe://example.org/db serial ` + db.Serial + ` (svid "web", x509,jwt_bundle)`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("log lines:\n%q\nwant\n%q", lines, want)
	}
	if got, want := o.metrics.got(), []string{"c rotations_total map[reason:x509,jwt_bundle] 1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("counters %q, want %q", got, want)
	}

	// A JWT-only rotation has no serial to log: one line for the svid.
	if err := o.plugin.Notifier().Notify(context.Background(), &hostapi.RotationEvent{Name: "api", Reason: hostapi.ChangedJWTSVID}); err != nil {
		t.Fatal(err)
	}
	recs := o.log.records()
	if got := recs[len(recs)-1].msg; got != `[edge] rotated svid "api" (jwt_svid)` {
		t.Errorf("JWT-only line %q", got)
	}
	if n := o.restarts.Load(); n != 0 {
		t.Errorf("%d instance restarts, want none", n)
	}
}

func TestValidate(t *testing.T) {
	o := open(t, `{}`)
	tests := []struct {
		name   string
		config string
		want   []string // fields with a problem
	}{
		{"empty", `{}`, nil},
		{"prefix", `{"prefix":"svid: "}`, nil},
		{"escapes", ` { "prefix" : "\u00e9\t\"x\"\\" } `, nil},
		{"prefix not a string", `{"prefix":7}`, []string{"prefix"}},
		{"prefix too long", `{"prefix":"` + strings.Repeat("x", 129) + `"}`, []string{"prefix"}},
		{"unknown attribute", `{"prefix":"a","level":{"x":[1,true,null]}}`, []string{"level"}},
		{"two problems", `{"a":1,"b":2}`, []string{"a", "b"}},
		{"not an object", `[1]`, []string{""}},
		{"not JSON", `{"prefix":`, []string{""}},
		{"trailing garbage", `{} x`, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := o.plugin.Validate(context.Background(), []byte(tt.config))
			var fes hostapi.FieldErrors
			if err != nil && !errors.As(err, &fes) {
				t.Fatalf("Validate = %v, not FieldErrors", err)
			}
			var got []string
			for _, fe := range fes {
				got = append(got, fe.Field)
				if fe.Message == "" {
					t.Errorf("problem with %q has no message", fe.Field)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems with %q, want %q: %v", got, tt.want, err)
			}
		})
	}
}

// TestConfigureRejects: an invalid config fails Configure with
// INVALID_ARGUMENT and the first problem, and Notify before a successful
// Configure is FAILED_PRECONDITION.
func TestConfigureRejects(t *testing.T) {
	o := open(t, `{}`)
	ctx := context.Background()
	err := o.wasm.Invoke(ctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"prefix":1}`)}, &pluginv1.ConfigureResponse{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "prefix: must be a string") {
		t.Errorf("Configure with a bad config = %v, want INVALID_ARGUMENT naming prefix", err)
	}
	if err := o.wasm.Invoke(ctx, adapter.MethodClose, &pluginv1.CloseRequest{}, &pluginv1.CloseResponse{}); err != nil {
		t.Fatal(err)
	}
	err = o.wasm.Invoke(ctx, adapter.MethodNotify, &notifierv1.NotifyRequest{Name: "web"}, &notifierv1.NotifyResponse{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Notify after Close = %v, want FAILED_PRECONDITION", err)
	}
}

func TestUnknownMethods(t *testing.T) {
	o := open(t, `{}`)
	for _, m := range []string{
		"/" + abi.Plugin_ServiceName + "/Reticulate",
		adapter.MethodWrite,
		adapter.MethodIssue,
		"/svidagent.plugin.notifier.v2.Notifier/Notify", // a version this guest does not serve
	} {
		t.Run(m, func(t *testing.T) {
			err := o.wasm.Invoke(context.Background(), m, &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), m[1:]) {
				t.Errorf("%s = %v, want UNIMPLEMENTED naming the method", m, err)
			}
		})
	}
	if n := o.restarts.Load(); n != 0 {
		t.Errorf("%d instance restarts, want none", n)
	}
}

// raw is a message whose encoding is exactly b: proto.Marshal copies
// unknown fields verbatim, which lets the test send bytes that are not
// protobuf.
func raw(b []byte) proto.Message {
	m := &emptypb.Empty{}
	m.ProtoReflect().SetUnknown(b)
	return m
}

// TestMalformedPayloads: bytes that are not the method's message answer
// INVALID_ARGUMENT; the guest does not trap (no instance is discarded) and
// keeps working.
func TestMalformedPayloads(t *testing.T) {
	o := open(t, `{}`)
	ctx := context.Background()
	x509 := protowire.AppendTag(nil, 5, protowire.BytesType)
	tests := []struct {
		name    string
		payload []byte
	}{
		{"truncated varint", []byte{0x10, 0x80}},
		{"length past the end", []byte{0x0a, 0x05, 'w'}},
		{"huge length", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"field 0", []byte{0x00, 0x01}},
		{"group wire type", []byte{0x0b}},
		{"wire type 7", []byte{0x0f}},
		{"eleven-byte varint", append([]byte{0x10}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"truncated fixed64", []byte{0x21, 1, 2, 3}},
		{"bad nested identity", append(x509, 0x02, 0x0a, 0x09)},
	}
	methods := []string{adapter.MethodNotify, adapter.MethodDescribe, adapter.MethodValidate, adapter.MethodConfigure}
	for _, tt := range tests {
		for _, m := range methods {
			if m != adapter.MethodNotify && tt.name == "bad nested identity" {
				continue
			}
			t.Run(tt.name+" "+m[strings.LastIndexByte(m, '/')+1:], func(t *testing.T) {
				err := o.wasm.Invoke(ctx, m, raw(tt.payload), &emptypb.Empty{})
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("%x = %v, want INVALID_ARGUMENT", tt.payload, err)
				}
			})
		}
	}
	// Unknown fields of every wire type are skipped, not refused: messages
	// only grow.
	var future []byte
	future = protowire.AppendTag(future, 99, protowire.VarintType)
	future = protowire.AppendVarint(future, 1<<40)
	future = protowire.AppendTag(future, 100, protowire.Fixed32Type)
	future = protowire.AppendFixed32(future, 7)
	future = protowire.AppendTag(future, 101, protowire.Fixed64Type)
	future = protowire.AppendFixed64(future, 7)
	future = protowire.AppendTag(future, 102, protowire.BytesType)
	future = protowire.AppendBytes(future, []byte("later"))
	good, err := proto.Marshal(&notifierv1.NotifyRequest{Name: "web", Reason: 1, X509: []*notifierv1.X509Identity{{SpiffeId: "spiffe://example.org/web", Serial: "0a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.wasm.Invoke(ctx, adapter.MethodNotify, raw(append(good, future...)), &notifierv1.NotifyResponse{}); err != nil {
		t.Errorf("Notify with unknown fields = %v", err)
	}
	recs := o.log.records()
	if len(recs) == 0 || recs[len(recs)-1].msg != `rotated spiffe://example.org/web serial 0a (svid "web", x509)` {
		t.Errorf("records after the malformed calls: %v", recs)
	}
	if n := o.restarts.Load(); n != 0 {
		t.Errorf("%d instance restarts, want none: a malformed payload trapped", n)
	}
}

// TestRawABI drives the module with wazero alone, byte for byte as
// hostapi/ABI.md §3-§4 describe, including envelopes the host runtime
// never sends: the worked example's Notify, and malformed envelopes.
func TestRawABI(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	var logged []string
	_, err := r.NewHostModuleBuilder("svidagent_host_v1").
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, level int32, ptr, n uint32) {
		b, _ := m.Memory().Read(ptr, n)
		logged = append(logged, string(b))
	}).Export("log").
		NewFunctionBuilder().WithFunc(func(context.Context, api.Module, uint32, uint32) int32 { return -1 }).Export("call").
		NewFunctionBuilder().WithFunc(func(context.Context, api.Module, uint32, uint32) int32 { return -1 }).Export("take").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := r.InstantiateWithConfig(ctx, code, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("instantiating: %v", err)
	}
	call := func(t *testing.T, req []byte) (uint32, string, []byte) {
		t.Helper()
		res, err := mod.ExportedFunction("svidagent_alloc").Call(ctx, uint64(len(req)))
		if err != nil || res[0] == 0 {
			t.Fatalf("svidagent_alloc(%d) = %v, %v", len(req), res, err)
		}
		if !mod.Memory().Write(uint32(res[0]), req) {
			t.Fatal("writing the request")
		}
		res, err = mod.ExportedFunction("svidagent_call").Call(ctx, res[0], uint64(len(req)))
		if err != nil {
			t.Fatalf("svidagent_call trapped: %v", err)
		}
		ptr, n := uint32(res[0]>>32), uint32(res[0])
		b, ok := mod.Memory().Read(ptr, n)
		if !ok || n < 8 {
			t.Fatalf("svidagent_call = %#x: out of bounds or short", res[0])
		}
		b = bytes.Clone(b)
		if _, err := mod.ExportedFunction("svidagent_free").Call(ctx, uint64(ptr), uint64(n)); err != nil {
			t.Fatal(err)
		}
		ml := binary.LittleEndian.Uint32(b[4:])
		if 8+uint64(ml) > uint64(len(b)) {
			t.Fatalf("message_len %d past the envelope's %d bytes", ml, len(b))
		}
		return binary.LittleEndian.Uint32(b), string(b[8 : 8+ml]), b[8+ml:]
	}
	env := func(method string, payload []byte) []byte {
		return append(binary.LittleEndian.AppendUint32(nil, uint32(len(method))), append([]byte(method), payload...)...)
	}

	// Configure first, then the worked example of ABI.md §4, byte for byte.
	if st, msg, _ := call(t, env("svidagent.plugin.v1.Plugin/Configure", nil)); st != 0 {
		t.Fatalf("Configure with no config = %d %q", st, msg)
	}
	example := []byte{
		0x2c, 0x00, 0x00, 0x00, 0x73, 0x76, 0x69, 0x64, 0x61, 0x67, 0x65, 0x6e, 0x74, 0x2e, 0x70, 0x6c,
		0x75, 0x67, 0x69, 0x6e, 0x2e, 0x6e, 0x6f, 0x74, 0x69, 0x66, 0x69, 0x65, 0x72, 0x2e, 0x76, 0x31,
		0x2e, 0x4e, 0x6f, 0x74, 0x69, 0x66, 0x69, 0x65, 0x72, 0x2f, 0x4e, 0x6f, 0x74, 0x69, 0x66, 0x79,
		0x0a, 0x03, 0x77, 0x65, 0x62, 0x10, 0x01, 0x18, 0x01, 0x3a, 0x0d, 0x2f, 0x72, 0x75, 0x6e, 0x2f,
		0x73, 0x76, 0x69, 0x64, 0x2e, 0x70, 0x65, 0x6d,
	}
	if st, msg, payload := call(t, example); st != 0 || msg != "" || len(payload) != 0 {
		t.Errorf("the worked example = %d %q %x, want the 8-byte OK envelope", st, msg, payload)
	}
	if want := []string{`rotated svid "web" (x509)`}; !reflect.DeepEqual(logged, want) {
		t.Errorf("logged %q, want %q", logged, want)
	}

	tests := []struct {
		name string
		req  []byte
		want uint32
	}{
		{"empty envelope", []byte{}, 3},
		{"short envelope", []byte{1, 0}, 3},
		{"method_len past the end", []byte{0xff, 0xff, 0xff, 0xff, 'x'}, 3},
		{"method_len one too many", env(abi.Method(abi.Plugin_Close_FullMethodName), nil)[:10], 3},
		{"empty method", env("", nil), 12},
		{"leading slash", env(abi.Plugin_Describe_FullMethodName, nil), 12},
		{"binary method", env("\xff\x00\x01", nil), 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, msg, _ := call(t, tt.req); st != tt.want || msg == "" {
				t.Errorf("status %d %q, want %d with a message", st, msg, tt.want)
			}
		})
	}
}

// TestConformance runs the plugin conformance suite over the module, as
// `svidagent conformance -kind notifier -plugin notifier.wasm` does.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Target{Kind: hostapi.KindNotifier, Path: wasmPath, ConfigJSON: []byte(`{"prefix":"conformance "}`)})
}

// BenchmarkNotify is a warm Notify call of the C module with a 4 KiB
// notification, through the agent's WASM runtime (it logs one line
// through the host, to a discarding logger): the C column of
// docs/writing-a-plugin.md's "What a plugin costs", beside sdk/notifier's
// BenchmarkNotify/logs.
func BenchmarkNotify(b *testing.B) {
	sum, err := wasmrt.HashFile(wasmPath)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p, err := wasmrt.Open(ctx, wasmrt.Config{Path: wasmPath, SHA256: sum, Kind: hostapi.KindNotifier, Name: "c",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.Invoke(ctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(`{}`)}, &pluginv1.ConfigureResponse{}); err != nil {
		b.Fatal(err)
	}
	// One X509-SVID: one line logged per call.
	req := &notifierv1.NotifyRequest{Name: "bench", Reason: uint32(hostapi.ChangedX509), Paths: []string{strings.Repeat("p", 4096)},
		X509: []*notifierv1.X509Identity{{SpiffeId: "spiffe://example.org/web", Serial: "0a1b"}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{}); err != nil {
			b.Fatal(err)
		}
	}
}
