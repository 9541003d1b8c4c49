// Package lite is a hand-written protobuf codec for the messages of host
// API v1 (hostapi/proto/**/v1), built on
// google.golang.org/protobuf/encoding/protowire alone. The guest side of
// the API (sdk/internal/guest, and so every WASM plugin built with sdk/wasm)
// uses it instead of the generated *.pb.go packages, so that a plugin links
// no protobuf reflection, no descriptors and no generated code: that is
// most of what made a Go plugin module 11 MB (docs/PERFORMANCE.md, "Guest
// module size").
//
// It is byte-compatible with the generated code, which lite_test.go
// proves field by field and FuzzUnmarshal checks against proto.Unmarshal:
// Unmarshal accepts and rejects what proto.Unmarshal accepts and rejects
// (malformed wire data, invalid UTF-8 in a string field), and drops the
// unknown fields and the known fields of another wire type that
// proto.Unmarshal would keep as unknown; Marshal writes the bytes of
// proto.MarshalOptions{Deterministic: true}.
//
//	var req lite.NotifyRequest
//	if err := req.Unmarshal(payload); err != nil { ... }
//	b, err := (&lite.WriteResponse{Paths: paths}).Marshal()
//
// Adding a field to a v1 message means adding it here too (the tests fail
// until it is): see the NEW DESCRIBE FIELDS markers in DescribeResponse.
package lite
