// Package envelope is the byte codec of the WASM ABI's request and response
// envelopes (hostapi/ABI.md §4). It is shared by the host (internal/wasmhost)
// and the guest SDK (sdk/wasm), so it imports nothing but the standard
// library's encoding/binary and builds for GOOS=wasip1.
//
// A request envelope carries a method name and a protobuf payload:
//
//	b := envelope.EncodeRequest("svidagent.plugin.notifier.v1.Notifier/Notify", payload)
//	method, payload, err := envelope.DecodeRequest(b)
//
// A response envelope carries a gRPC status code, a message and a payload:
//
//	b := envelope.EncodeResponse(0, "", payload)
//	code, msg, payload, err := envelope.DecodeResponse(b)
//
// Decoders check every length against the buffer and never panic; the
// payload they return aliases the input.
package envelope
