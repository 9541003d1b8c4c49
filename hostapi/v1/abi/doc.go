// Package abi is what a plugin and the agent must agree on, byte for byte,
// besides the protobuf messages of hostapi/proto: the request and response
// envelopes of the WASM ABI (hostapi/ABI.md §4), the gRPC method and
// service names of host API v1, the names the WASM ABI exports and imports
// (§2, §5), and the go-plugin handshake of subprocess plugins (§8).
//
// It is public and versioned by path (v1 is ABI v1; an incompatible ABI is
// a v2 beside it) so that the agent, the Go SDK (sdk/wasm, sdk/goplugin)
// and third-party runtimes or SDKs share one definition. It imports only
// the standard library, links no protobuf code, and builds for
// GOOS=wasip1.
//
// The method and service names in names.go are generated from the .proto
// files' descriptors (go generate, or go test -run TestNames -update); a
// test checks them against the gRPC generated *_FullMethodName constants.
//
// A request envelope carries a method name (without gRPC's leading "/")
// and a protobuf payload; a response envelope a status code, a message and
// a payload:
//
//	b := abi.EncodeRequest(abi.Method(abi.Notifier_Notify_FullMethodName), payload)
//	method, payload, err := abi.DecodeRequest(b)
//
//	b := abi.EncodeResponse(0, "", payload)
//	code, msg, payload, err := abi.DecodeResponse(b)
//
// Decoders check every length against the buffer and never panic; the
// payload they return aliases the input.
package abi

//go:generate go test -run TestNames -update
