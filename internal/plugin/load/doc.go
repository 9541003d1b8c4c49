// Package load opens external plugins: the one place that knows the
// runtimes. The agent, `svidagent validate` and `plugin inspect`, and the
// conformance suite all open a plugin block through [Open], which checks
// the sha256 pin, starts the WASM module (internal/plugin/wasmrt) or the
// go-plugin subprocess (internal/plugin/subproc) with the host services the
// block grants, and, given metrics, counts and times every call. What
// [Open] returns is a [Conn] that internal/plugin/adapter adapts onto the
// hostapi interfaces.
//
// Which runtimes a binary has is decided here by build tags: the
// subprocess runtime needs a unix system and is left out by the tag
// svidagent_nogoplugin (docs/EDGE.md); a plugin block that needs a missing
// runtime fails to open with an error that says so.
package load
