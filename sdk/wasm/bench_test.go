//go:build !wasip1

package wasm_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"google.golang.org/protobuf/proto"
)

// BenchmarkGuestNotify is a warm Notify call of an SDK guest
// (testdata/guest, built as plugin authors build it) with a 4 KiB
// payload, through wazero's compiler engine as the agent runs it: the
// request is decoded, the plugin logs one line through the host (one host
// call, encoded by the guest) and the answer is encoded. It is the guest's
// side of docs/PERFORMANCE.md's WASM call cost (internal/plugin/wasmrt's
// BenchmarkInvokeNotify uses a hand-written guest, not the SDK).
func BenchmarkGuestNotify(b *testing.B) {
	ctx := context.Background()
	r, err := newRuntime(ctx, wazero.NewRuntimeConfigCompiler())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, guestWasm(b))
	if err != nil {
		b.Fatal(err)
	}
	h := &host{httpStatus: 204}
	ctx = context.WithValue(ctx, hostKey{}, h)
	stderr := &bytes.Buffer{}
	// The real clocks, as the agent's runtime gives a guest: with wazero's
	// default fake clock the Go guest's collector falls behind and the
	// module runs out of its 32 MiB after some 10^4 calls.
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithStderr(stderr).WithSysNanotime().WithSysWalltime())
	if err != nil {
		b.Fatal(err)
	}
	in := &instance{t: b, ctx: ctx, mod: mod, host: h, stderr: stderr,
		alloc: mod.ExportedFunction("svidagent_alloc"), free: mod.ExportedFunction("svidagent_free"), call: mod.ExportedFunction("svidagent_call")}
	if code, msg := in.invoke("svidagent.plugin.v1.Plugin/Configure", &pluginv1.ConfigureRequest{ConfigJson: []byte(`{"url":"http://127.0.0.1:8080/hook"}`)}, nil); code != 0 {
		b.Fatalf("Configure = %d %q", code, msg)
	}
	payload, err := proto.Marshal(&notifierv1.NotifyRequest{Name: "bench", Paths: []string{strings.Repeat("p", 4096)}})
	if err != nil {
		b.Fatal(err)
	}
	env := abi.EncodeRequest("svidagent.plugin.notifier.v1.Notifier/Notify", payload)
	b.ReportAllocs()
	for b.Loop() {
		if code, msg, _, err := abi.DecodeResponse(in.raw(env)); err != nil || code != 0 {
			b.Fatalf("Notify = %d %q %v", code, msg, err)
		}
		h.mu.Lock()
		h.logs, h.calls = h.logs[:0], h.calls[:0]
		h.mu.Unlock()
	}
}
