// Package adapter adapts external plugins — WASM modules (internal/
// wasmrt) and go-plugin subprocesses (internal/plugin/subproc) — onto the
// hostapi Go interfaces, so that the core never knows which runtime a plugin
// uses. It owns version negotiation, the Validate/Configure/Close lifecycle,
// the conversion between hostapi types and the v1 protobuf messages, and the
// circuit breaker.
//
// It is also where plugin-supplied text enters the host: every error a
// Conn returns, every string of Describe and every Validate problem passes
// through [BoundText], which escapes non-printable bytes and caps the text
// at [MaxTextBytes] with a "… (N bytes truncated)" marker, so that a
// plugin's multi-MiB or terminal-escape error reaches the log, /status and
// `svidagent status` bounded and inert. An error keeps its gRPC code.
package adapter
