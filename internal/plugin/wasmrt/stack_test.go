package wasmrt_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recursingModule is a hand-assembled ABI v1 module (a plugin not written
// in Go, whose calls use WebAssembly's own call stack) whose svidagent_call
// recurses without end:
//
//	(module
//	  (memory (export "memory") 1)
//	  (func (export "svidagent_abi_v1"))
//	  (func (export "svidagent_alloc") (param i32) (result i32) i32.const 1024)
//	  (func (export "svidagent_free") (param i32 i32))
//	  (func (export "svidagent_call") (param i32 i32) (result i64) call $r i64.const 0)
//	  (func $r call $r))
func recursingModule() []byte {
	uleb := func(b []byte, v uint32) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				c |= 0x80
			}
			b = append(b, c)
			if v == 0 {
				return b
			}
		}
	}
	vec := func(items ...[]byte) []byte {
		b := uleb(nil, uint32(len(items)))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	section := func(id byte, body []byte) []byte { return append(uleb([]byte{id}, uint32(len(body))), body...) }
	name := func(s string) []byte { return append(uleb(nil, uint32(len(s))), s...) }
	export := func(n string, kind, idx byte) []byte { return append(name(n), kind, idx) }
	code := func(body ...byte) []byte {
		return append(uleb(nil, uint32(len(body)+1)), append([]byte{0}, body...)...)
	}

	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = append(m, section(1, vec(
		[]byte{0x60, 0, 0},                   // 0: () -> ()
		[]byte{0x60, 1, 0x7f, 1, 0x7f},       // 1: (i32) -> i32
		[]byte{0x60, 2, 0x7f, 0x7f, 0},       // 2: (i32, i32) -> ()
		[]byte{0x60, 2, 0x7f, 0x7f, 1, 0x7e}, // 3: (i32, i32) -> i64
	))...)
	m = append(m, section(3, vec([]byte{0}, []byte{1}, []byte{2}, []byte{3}, []byte{0}))...)
	m = append(m, section(5, vec([]byte{0, 1}))...)
	m = append(m, section(7, vec(
		export("svidagent_abi_v1", 0, 0),
		export("svidagent_alloc", 0, 1),
		export("svidagent_free", 0, 2),
		export("svidagent_call", 0, 3),
		export("memory", 2, 0),
	))...)
	m = append(m, section(10, vec(
		code(0x0b),
		code(0x41, 0x80, 0x08, 0x0b),
		code(0x0b),
		code(0x10, 4, 0x42, 0, 0x0b),
		code(0x10, 4, 0x0b),
	))...)
	return m
}

// TestStackOverflow is the hostile test of a guest that recurses without
// end: the call fails as a stack overflow (not as out of memory, whatever
// the memory limit), the instance is discarded, the memory wazero grew for
// the call stack goes back, and the next call runs.
func TestStackOverflow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recurse.wasm")
	if err := os.WriteFile(path, recursingModule(), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, err := wasmrt.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config(t, "notifier")
	cfg.Path, cfg.SHA256, cfg.Name = path, sum, "recurse"
	cfg.Limits.MemoryBytes = 1 << 20
	// An issuer's deadline (30 s): under -race the ~84 MB of stack copies
	// take longer than a notifier's 2 s.
	cfg.Kind = hostapi.KindIssuer
	p, err := wasmrt.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	for i := range 3 {
		err := notify(context.Background(), p, "x")
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "stack overflow") || strings.Contains(err.Error(), "out of memory") {
			t.Fatalf("call %d = %v; want RESOURCE_EXHAUSTED naming a stack overflow", i, err)
		}
	}
	// wazero grows a call stack to about 84 MB before it gives up; three
	// calls must not keep any of it.
	if after := heap(); after > before+16<<20 {
		t.Errorf("heap in use grew from %d to %d MiB over three overflowing calls", before>>20, after>>20)
	}
}
