//go:build wasip1

// Package abi is the test guests' hand-written side of hostapi/ABI.md,
// shared by the WASM runtime's test guests (internal/plugin/wasmrt/testdata/
// guests) and the conformance suite's broken fixtures (conformance/
// testdata/broken): the allocator exports, the request/response envelopes
// and the host imports, using //go:wasmexport and //go:wasmimport directly
// (no SDK, and on purpose not hostapi/v1/abi: it is a second reading of
// ABI.md that the host is tested against). Each guest defines
// svidagent_abi_v1 and svidagent_call itself, so that a guest can leave
// either out.
package abi

import (
	"encoding/binary"
	"unsafe"
)

// live keeps every buffer handed to the host reachable until it is freed.
var live = map[uint32][]byte{}

// Alloc allocates size bytes the host may write to.
//
//go:wasmexport svidagent_alloc
func Alloc(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	b := make([]byte, size)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	live[p] = b
	return p
}

// Free releases a buffer from Alloc.
//
//go:wasmexport svidagent_free
func Free(ptr, size uint32) { delete(live, ptr) }

// Codes a Handler returns to make Call misbehave.
const (
	CodeGarbage    = 0xffff // answer a malformed envelope
	CodeBadPointer = 0xfffe // answer a pointer out of bounds
)

// Handler answers one request envelope.
type Handler func(method string, payload []byte) (code uint32, msg string, resp []byte)

// Call implements svidagent_call for h: it decodes the request envelope at
// ptr, frees it, and returns the response envelope as ptr<<32|len.
func Call(ptr, n uint32, h Handler) uint64 {
	req := live[ptr][:n:n]
	delete(live, ptr)
	return serve(req, h)
}

// CallKeepingRequest is Call but never frees the request: the bug of
// fixture keepsrequests.
func CallKeepingRequest(ptr, n uint32, h Handler) uint64 {
	return serve(live[ptr][:n:n], h)
}

func serve(req []byte, h Handler) uint64 {
	var code uint32
	var msg string
	var resp []byte
	if len(req) < 4 || uint64(binary.LittleEndian.Uint32(req)) > uint64(len(req)-4) {
		code, msg = 13, "malformed request envelope"
	} else {
		m := binary.LittleEndian.Uint32(req)
		code, msg, resp = h(string(req[4:4+m]), req[4+m:])
	}
	switch code {
	case CodeGarbage: // a 3-byte envelope: shorter than its header
		out := []byte{1, 2, 3}
		p := uint32(uintptr(unsafe.Pointer(&out[0])))
		live[p] = out
		return uint64(p)<<32 | 3
	case CodeBadPointer: // a pointer past the end of memory
		return uint64(0xfffffff0)<<32 | 64
	}
	out := make([]byte, 8+len(msg)+len(resp))
	binary.LittleEndian.PutUint32(out, code)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(msg)))
	copy(out[8:], msg)
	copy(out[8+len(msg):], resp)
	p := uint32(uintptr(unsafe.Pointer(&out[0])))
	live[p] = out
	return uint64(p)<<32 | uint64(len(out))
}

//go:wasmimport svidagent_host_v1 log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport svidagent_host_v1 call
func hostCall(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport svidagent_host_v1 take
func hostTake(ptr unsafe.Pointer, n uint32) int32

// Log logs msg through the host's log import.
func Log(level int32, msg string) {
	if msg == "" {
		return
	}
	b := []byte(msg)
	hostLog(level, unsafe.Pointer(&b[0]), uint32(len(b)))
}

// HostCall calls a host service through call/take and returns the decoded
// response envelope. ok is false when the host refused the envelope.
func HostCall(method string, payload []byte) (code uint32, msg string, resp []byte, ok bool) {
	req := make([]byte, 4+len(method)+len(payload))
	binary.LittleEndian.PutUint32(req, uint32(len(method)))
	copy(req[4:], method)
	copy(req[4+len(method):], payload)
	n := hostCall(unsafe.Pointer(&req[0]), uint32(len(req)))
	if n < 0 {
		return 0, "", nil, false
	}
	out := make([]byte, n+1) // +1: never a zero-length buffer
	if hostTake(unsafe.Pointer(&out[0]), uint32(len(out))) != n {
		return 0, "", nil, false
	}
	out = out[:n]
	if len(out) < 8 {
		return 0, "", nil, false
	}
	l := binary.LittleEndian.Uint32(out[4:])
	if uint64(l) > uint64(len(out)-8) {
		return 0, "", nil, false
	}
	return binary.LittleEndian.Uint32(out), string(out[8 : 8+l]), out[8+l:], true
}
