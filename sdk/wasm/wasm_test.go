//go:build !wasip1

package wasm_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// buildCommand returns the build command documented in doc.go, so that
// the tests build the guest exactly as plugin authors are told to.
func buildCommand(t testing.TB) []string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "//"))
		if strings.HasPrefix(line, "GOOS=wasip1 GOARCH=wasm go build") {
			return strings.Fields(line)
		}
	}
	t.Fatal("doc.go documents no GOOS=wasip1 build command")
	return nil
}

var guestOnce struct {
	sync.Once
	wasm []byte
	err  error
}

// guestWasm builds testdata/guest once per test binary with the command of
// doc.go.
func guestWasm(t testing.TB) []byte {
	t.Helper()
	guestOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sdkwasm")
		if err != nil {
			guestOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "guest.wasm")
		var env, args []string
		for _, f := range buildCommand(t) {
			switch {
			case len(args) == 0 && strings.Contains(f, "="):
				env = append(env, f)
			case f == "plugin.wasm":
				args = append(args, out)
			case f == "./path":
				args = append(args, "./testdata/guest")
			default:
				args = append(args, f)
			}
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			guestOnce.err = fmt.Errorf("%s: %v\n%s", strings.Join(append(env, args...), " "), err, b)
			return
		}
		guestOnce.wasm, guestOnce.err = os.ReadFile(out)
	})
	if guestOnce.err != nil {
		t.Fatal(guestOnce.err)
	}
	return guestOnce.wasm
}

// host is a minimal svidagent_host_v1: it records logs and host calls and
// answers HTTP with httpStatus (or the error code httpCode).
type host struct {
	mu         sync.Mutex
	logs       []string
	calls      []string
	httpCode   uint32
	httpStatus int32
	pending    []byte
}

func (h *host) call(ctx context.Context, m api.Module, ptr, n uint32) int32 {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		return -1
	}
	method, payload, err := abi.DecodeRequest(b)
	if err != nil {
		return -1
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, method)
	var resp []byte
	switch method {
	case "svidagent.host.v1.Logger/Log":
		var r hostv1.LogRequest
		if err := proto.Unmarshal(payload, &r); err != nil {
			resp = abi.EncodeResponse(3, err.Error(), nil)
			break
		}
		h.logs = append(h.logs, fmt.Sprintf("%d %s %v", r.GetLevel(), r.GetMessage(), r.GetAttrs()))
		resp = abi.EncodeResponse(0, "", nil)
	case "svidagent.host.v1.HTTP/Request":
		var r hostv1.HTTPRequest
		if err := proto.Unmarshal(payload, &r); err != nil {
			resp = abi.EncodeResponse(3, err.Error(), nil)
			break
		}
		h.calls[len(h.calls)-1] += " " + r.GetMethod() + " " + r.GetUrl() + " " + string(r.GetBody())
		if h.httpCode != 0 {
			resp = abi.EncodeResponse(h.httpCode, "host not allowed", nil)
			break
		}
		out, _ := proto.Marshal(&hostv1.HTTPResponse{Status: h.httpStatus, Body: []byte("body")})
		resp = abi.EncodeResponse(0, "", out)
	default:
		resp = abi.EncodeResponse(12, "unknown", nil)
	}
	h.pending = resp
	return int32(len(resp))
}

func (h *host) take(ctx context.Context, m api.Module, ptr, n uint32) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending == nil || uint32(len(h.pending)) > n || !m.Memory().Write(ptr, h.pending) {
		return -1
	}
	l := len(h.pending)
	h.pending = nil
	return int32(l)
}

func (h *host) log(ctx context.Context, m api.Module, level int32, ptr, n uint32) {
	b, _ := m.Memory().Read(ptr, n)
	h.mu.Lock()
	h.logs = append(h.logs, fmt.Sprintf("%d %s", level, b))
	h.mu.Unlock()
}

type instance struct {
	t      testing.TB
	ctx    context.Context // carries host
	mod    api.Module
	alloc  api.Function
	free   api.Function
	call   api.Function
	host   *host
	stderr *bytes.Buffer
}

type hostKey struct{}

// The host module's functions find their test's host in the context of
// the export call.
func hostOf(ctx context.Context) *host { return ctx.Value(hostKey{}).(*host) }

var rtOnce struct {
	sync.Once
	rt  wazero.Runtime
	cm  wazero.CompiledModule
	err error
}

// runtime compiles the guest once per test binary, in one runtime with the
// host module; each test instantiates its own module from it.
func runtime(t *testing.T) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	wasm := guestWasm(t)
	rtOnce.Do(func() {
		ctx := context.Background()
		// The interpreter: compiling a 6 MB module with the compiler
		// engine under -race takes minutes on this machine.
		r, err := newRuntime(ctx, wazero.NewRuntimeConfigInterpreter())
		if err != nil {
			rtOnce.err = err
			return
		}
		rtOnce.rt = r
		rtOnce.cm, rtOnce.err = r.CompileModule(ctx, wasm)
	})
	if rtOnce.err != nil {
		t.Fatal(rtOnce.err)
	}
	return rtOnce.rt, rtOnce.cm
}

// newRuntime returns a runtime of cfg, limited to 32 MiB of memory per
// module, with WASI and the host module.
func newRuntime(ctx context.Context, cfg wazero.RuntimeConfig) (wazero.Runtime, error) {
	r := wazero.NewRuntimeWithConfig(ctx, cfg.WithMemoryLimitPages(512)) // 32 MiB
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	_, err := r.NewHostModuleBuilder("svidagent_host_v1").
		NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, level int32, ptr, n uint32) {
		hostOf(ctx).log(ctx, m, level, ptr, n)
	}).Export("log").
		NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) int32 { return hostOf(ctx).call(ctx, m, ptr, n) }).Export("call").
		NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) int32 { return hostOf(ctx).take(ctx, m, ptr, n) }).Export("take").
		Instantiate(ctx)
	if err != nil {
		r.Close(ctx)
		return nil, err
	}
	return r, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rtOnce.rt != nil {
		rtOnce.rt.Close(context.Background())
	}
	os.Exit(code)
}

func instantiate(t *testing.T) *instance {
	t.Helper()
	r, cm := runtime(t)
	exports := cm.ExportedFunctions()
	for _, name := range []string{"svidagent_abi_v1", "svidagent_alloc", "svidagent_free", "svidagent_call", "_initialize"} {
		if _, ok := exports[name]; !ok {
			t.Fatalf("the module does not export %s", name)
		}
	}
	if _, ok := exports["_start"]; ok {
		t.Fatal("the module exports _start; it must be a reactor")
	}
	h := &host{httpStatus: 204}
	ctx := context.WithValue(context.Background(), hostKey{}, h)
	stderr := &bytes.Buffer{}
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithStderr(stderr).WithStdout(stderr))
	if err != nil {
		t.Fatalf("instantiating: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { mod.Close(context.Background()) })
	return &instance{t: t, ctx: ctx, mod: mod, host: h, stderr: stderr,
		alloc: mod.ExportedFunction("svidagent_alloc"), free: mod.ExportedFunction("svidagent_free"), call: mod.ExportedFunction("svidagent_call")}
}

// raw hands env to svidagent_call as the host does and returns the
// response envelope.
func (in *instance) raw(env []byte) []byte {
	in.t.Helper()
	ctx := in.ctx
	res, err := in.alloc.Call(ctx, uint64(len(env)))
	if err != nil || res[0] == 0 {
		in.t.Fatalf("svidagent_alloc(%d) = %v, %v", len(env), res, err)
	}
	ptr := uint32(res[0])
	if !in.mod.Memory().Write(ptr, env) {
		in.t.Fatal("writing the request out of bounds")
	}
	return in.callAt(ptr, uint32(len(env)))
}

func (in *instance) callAt(ptr, n uint32) []byte {
	in.t.Helper()
	ctx := in.ctx
	res, err := in.call.Call(ctx, uint64(ptr), uint64(n))
	if err != nil {
		in.t.Fatalf("svidagent_call trapped: %v\n%s", err, in.stderr)
	}
	rp, rl := uint32(res[0]>>32), uint32(res[0])
	b, ok := in.mod.Memory().Read(rp, rl)
	if !ok || rl < 8 {
		in.t.Fatalf("response (%#x, %d) out of bounds or short", rp, rl)
	}
	out := bytes.Clone(b)
	if _, err := in.free.Call(ctx, uint64(rp), uint64(rl)); err != nil {
		in.t.Fatal(err)
	}
	return out
}

func (in *instance) invoke(method string, req, resp proto.Message) (uint32, string) {
	in.t.Helper()
	payload, err := proto.Marshal(req)
	if err != nil {
		in.t.Fatal(err)
	}
	code, msg, p, err := abi.DecodeResponse(in.raw(abi.EncodeRequest(method, payload)))
	if err != nil {
		in.t.Fatal(err)
	}
	if code == 0 && resp != nil {
		if err := proto.Unmarshal(p, resp); err != nil {
			in.t.Fatal(err)
		}
	}
	return code, msg
}

func TestGuestSize(t *testing.T) {
	t.Logf("guest module: %d bytes (%.1f MB)", len(guestWasm(t)), float64(len(guestWasm(t)))/1e6)
}

func TestGuest(t *testing.T) {
	in := instantiate(t)
	var desc pluginv1.DescribeResponse
	if code, msg := in.invoke("svidagent.plugin.v1.Plugin/Describe", &pluginv1.DescribeRequest{}, &desc); code != 0 {
		t.Fatalf("Describe = %d %q", code, msg)
	}
	if desc.GetName() != "test-guest" || desc.GetVersion() != "1.0.0" || len(desc.GetServices()) != 2 || desc.GetServices()[1] != "svidagent.plugin.notifier.v1.Notifier" {
		t.Errorf("Describe = %v", &desc)
	}
	var val pluginv1.ValidateResponse
	if code, _ := in.invoke("svidagent.plugin.v1.Plugin/Validate", &pluginv1.ValidateRequest{ConfigJson: []byte(`{}`)}, &val); code != 0 || len(val.GetProblems()) != 1 || val.GetProblems()[0].GetField() != "url" {
		t.Errorf("Validate({}) = %d %v", code, &val)
	}
	steps := []struct {
		name     string
		method   string
		req      proto.Message
		httpCode uint32
		status   int32
		wantCode uint32
		wantMsg  string
	}{
		{"before configure", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web"}, 0, 204, 9, "not configured"},
		{"configure", "svidagent.plugin.v1.Plugin/Configure", &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"http://127.0.0.1:8080/hook"}`)}, 0, 204, 0, ""},
		{"notify", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web", Paths: []string{"/a"}}, 0, 204, 0, ""},
		{"notify over http", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "http"}, 0, 204, 0, ""},
		{"http 500", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "http"}, 0, 500, 2, "status 500: body"},
		{"http not allowed", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "http"}, 7, 0, 7, "host not allowed"},
		{"panic", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "panic"}, 0, 204, 13, "guest panic on purpose"},
		{"after the panic", "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web"}, 0, 204, 0, ""},
		{"unknown method", "svidagent.plugin.writer.v1.Writer/Write", &notifierv1.NotifyRequest{}, 0, 204, 12, "does not implement"},
		{"close", "svidagent.plugin.v1.Plugin/Close", &pluginv1.CloseRequest{}, 0, 204, 0, ""},
	}
	for _, s := range steps {
		in.host.httpCode, in.host.httpStatus = s.httpCode, s.status
		code, msg := in.invoke(s.method, s.req, nil)
		if code != s.wantCode || !strings.Contains(msg, s.wantMsg) {
			t.Errorf("%s: %d %q, want %d containing %q", s.name, code, msg, s.wantCode, s.wantMsg)
		}
	}
	wantCalls := "svidagent.host.v1.HTTP/Request POST http://127.0.0.1:8080/hook http"
	var https int
	for _, c := range in.host.calls {
		if c == wantCalls {
			https++
		}
	}
	if https != 3 {
		t.Errorf("host calls = %q, want 3 of %q", in.host.calls, wantCalls)
	}
	if len(in.host.logs) == 0 || in.host.logs[0] != "0 notifying [name web paths 1]" {
		t.Errorf("logs = %q", in.host.logs)
	}
}

func TestGuestBadInput(t *testing.T) {
	in := instantiate(t)
	tests := []struct {
		name     string
		env      []byte
		wantCode uint32
	}{
		{"empty", []byte{}, 3},
		{"short", []byte{1, 2}, 3},
		{"method length past the end", binary.LittleEndian.AppendUint32(nil, 1000), 3},
		{"garbage payload", abi.EncodeRequest("svidagent.plugin.v1.Plugin/Describe", []byte{0xff, 0xff}), 3},
		{"unknown method", abi.EncodeRequest("nope/Nope", nil), 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in.t = t
			code, msg, _, err := abi.DecodeResponse(in.raw(tt.env))
			if err != nil || code != tt.wantCode || msg == "" {
				t.Errorf("answer = %d %q %v, want %d", code, msg, err, tt.wantCode)
			}
		})
	}
	in.t = t
	// A pointer svidagent_alloc never returned, and a length past the
	// buffer: answered, not trapped.
	for _, c := range []struct{ ptr, n uint32 }{{8, 4}, {0, 0}} {
		code, _, _, err := abi.DecodeResponse(in.callAt(c.ptr, c.n))
		if err != nil || code != 3 {
			t.Errorf("call(%#x, %d) = %d %v, want 3", c.ptr, c.n, code, err)
		}
	}
	res, err := in.alloc.Call(in.ctx, 16)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _, _ := abi.DecodeResponse(in.callAt(uint32(res[0]), 17)); code != 3 {
		t.Errorf("a length past the allocation answered %d, want 3", code)
	}
	if res, err := in.alloc.Call(in.ctx, 1<<31); err != nil || res[0] != 0 {
		t.Errorf("svidagent_alloc(2 GiB) = %v, %v; want 0", res, err)
	}
}

// TestGuestFreesBuffers checks the ownership rule from the guest's side:
// 40 calls of 1 MiB would leak 40 MiB, beyond the 32 MiB limit, if the
// guest kept its request or response buffers.
func TestGuestFreesBuffers(t *testing.T) {
	in := instantiate(t)
	// An unknown field: the guest's protobuf decoding skips it cheaply.
	env := abi.EncodeRequest("svidagent.plugin.v1.Plugin/Describe",
		protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), make([]byte, 1<<20)))
	in.raw(env)
	before := in.mod.Memory().Size()
	const calls = 40
	for range calls {
		if code, msg, _, err := abi.DecodeResponse(in.raw(env)); err != nil || code != 0 {
			t.Fatalf("Describe = %d %q %v", code, msg, err)
		}
	}
	after := in.mod.Memory().Size()
	t.Logf("linear memory: %d KiB before, %d KiB after %d calls of 1 MiB", before>>10, after>>10, calls)
	if after > before+8<<20 {
		t.Errorf("linear memory grew from %d to %d bytes", before, after)
	}
}

// TestGuestLinksNoHost checks that a guest links nothing of the host, and
// no protobuf reflection or generated code: sdk/internal/lite encodes.
func TestGuestLinksNoHost(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "github.com/svidagent/svidagent/sdk", "github.com/svidagent/svidagent/sdk/wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/tetratelabs/wazero", "github.com/hashicorp/go-plugin", "google.golang.org/grpc",
			"google.golang.org/protobuf/proto", "google.golang.org/protobuf/reflect/", "google.golang.org/protobuf/internal/impl",
			"google.golang.org/protobuf/internal/filedesc", "github.com/svidagent/svidagent/hostapi/proto/",
			"github.com/svidagent/svidagent/internal/wire\n", "github.com/svidagent/svidagent/internal/",
		} {
			if strings.HasPrefix(dep+"\n", banned) {
				t.Errorf("a wasip1 guest links %s", dep)
			}
		}
	}
}

// TestGuestLinksOnlyItsKind checks, in the function names of the module
// (its wasm name section), that a notifier served with ServeNotifier links
// the notifier's conversion and none of a writer's or an issuer's: no
// certificate parsing, no JOSE.
func TestGuestLinksOnlyItsKind(t *testing.T) {
	mod := guestWasm(t)
	// Go writes "/", "-", "(", "*" and ")" as "_" in wasm function names.
	for _, fn := range []string{"github.com_svidagent_svidagent_sdk_internal_lite.RotationEvent", "github.com_svidagent_svidagent_sdk_internal_lite.__NotifyRequest_.Unmarshal"} {
		if !bytes.Contains(mod, []byte(fn)) {
			t.Errorf("the notifier module has no function %s; the test's premise is wrong", fn)
		}
	}
	for _, fn := range []string{
		"github.com_svidagent_svidagent_sdk_internal_lite_creds.CredentialSet",
		"github.com_svidagent_svidagent_sdk_internal_lite_creds.IssueResponseOf",
		"crypto_x509.ParseCertificate",
		"crypto_x509.ParsePKCS8PrivateKey",
		"github.com_go_jose_go_jose_v4_jwt.ParseSigned",
		"google.golang.org_protobuf_proto.Unmarshal",
	} {
		if bytes.Contains(mod, []byte(fn)) {
			t.Errorf("the notifier module links %s", fn)
		}
	}
}
