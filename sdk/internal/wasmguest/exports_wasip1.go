//go:build wasip1

package wasmguest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk/core"
)

// LogError writes msg to the agent's log at error level, through the log
// import, whether or not a plugin is served: what Serve uses to say why a
// plugin is unusable.
func LogError(msg string) {
	b := []byte(msg)
	importLog(8, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)))
	runtime.KeepAlive(b)
}

// maxAlloc bounds one svidagent_alloc; larger requests get 0.
const maxAlloc = 1 << 30

// bufs keeps every buffer handed to the host reachable, keyed by its
// address, until it is freed: the host holds only an i32 address, which
// the garbage collector does not see. Go's collector does not move heap
// objects, so the address stays valid while the slice is in the map.
var (
	bufMu sync.Mutex
	bufs  = map[uint32][]byte{}
)

func keep(b []byte) uint32 {
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	bufMu.Lock()
	bufs[p] = b
	bufMu.Unlock()
	return p
}

func release(p uint32) ([]byte, bool) {
	bufMu.Lock()
	defer bufMu.Unlock()
	b, ok := bufs[p]
	delete(bufs, p)
	return b, ok
}

// svidagentABIv1 is the ABI marker; the host never calls it.
//
//go:wasmexport svidagent_abi_v1
func svidagentABIv1() {}

// svidagentAlloc allocates size bytes for the host to write a request
// envelope into. It returns 0 for a size above maxAlloc. An allocation that
// exhausts the module's memory limit traps (Go's allocator cannot report
// it), and the host discards the instance.
//
//go:wasmexport svidagent_alloc
func svidagentAlloc(size uint32) uint32 {
	if size > maxAlloc {
		return 0
	}
	return keep(make([]byte, max(size, 1)))
}

// svidagentFree releases a buffer of svidagentAlloc or a response of
// svidagentCall. Unknown addresses are ignored.
//
//go:wasmexport svidagent_free
func svidagentFree(ptr, size uint32) {
	release(ptr)
}

// svidagentCall answers the request envelope at ptr, which it frees, and
// returns (resp_ptr << 32) | resp_len of the response envelope, which the
// host frees. It never traps on bad input.
//
//go:wasmexport svidagent_call
func svidagentCall(ptr, size uint32) uint64 {
	var resp []byte
	if req, ok := release(ptr); !ok || uint64(size) > uint64(len(req)) {
		resp = abi.EncodeResponse(uint32(core.CodeInvalidArgument),
			fmt.Sprintf("sdk/wasm: the request at %#x (%d bytes) is not a buffer of svidagent_alloc", ptr, size), nil)
	} else {
		resp = HandleEnvelope(context.Background(), req[:size])
	}
	return uint64(keep(resp))<<32 | uint64(len(resp))
}

//go:wasmimport svidagent_host_v1 log
func importLog(level int32, ptr unsafe.Pointer, size uint32)

//go:wasmimport svidagent_host_v1 call
func importCall(ptr unsafe.Pointer, size uint32) int32

//go:wasmimport svidagent_host_v1 take
func importTake(ptr unsafe.Pointer, size uint32) int32

// HostCall is the guest.HostCaller of a WASM guest: one call then one take
// (hostapi/ABI.md §5).
func HostCall(ctx context.Context, method string, req []byte) (uint32, string, []byte) {
	if err := ctx.Err(); err != nil {
		return uint32(core.CodeOf(err)), err.Error(), nil
	}
	env := abi.EncodeRequest(strings.TrimPrefix(method, "/"), req)
	n := importCall(unsafe.Pointer(unsafe.SliceData(env)), uint32(len(env)))
	runtime.KeepAlive(env)
	if n < 0 {
		return uint32(core.CodeInternal), "sdk/wasm: the host refused the call envelope of " + method, nil
	}
	buf := make([]byte, max(n, 1))
	if m := importTake(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf))); m != n {
		return uint32(core.CodeInternal), fmt.Sprintf("sdk/wasm: taking the host's answer to %s: got %d bytes, want %d", method, m, n), nil
	}
	runtime.KeepAlive(buf)
	code, msg, payload, err := abi.DecodeResponse(buf[:n])
	if err != nil {
		return uint32(core.CodeInternal), "sdk/wasm: the host's answer to " + method + ": " + err.Error(), nil
	}
	return code, msg, payload
}
