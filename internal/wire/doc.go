// Package wire converts between the hostapi Go types and the host API v1
// protobuf messages (the generated *.pb.go types), in both directions: the
// host side (internal/plugin/adapter, conformance) encodes requests and decodes
// replies. The plugin side (sdk/internal/guest, so both SDKs) uses
// sdk/internal/lite instead, a hand-written codec with the same
// conversions that links no protobuf reflection into WASM guests; lite's
// tests check that the two agree. Decoding is strict: malformed
// certificates, keys, tokens or bundles are errors, never partial values.
package wire
