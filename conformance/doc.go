// Package conformance is the suite every svidagent plugin author runs: the
// checks of the host API v1 contract (hostapi/ABI.md), for a WebAssembly
// module, a go-plugin subprocess or an in-process implementation. It is
// packaged two ways, as csi-sanity is. As a Go package, from a plugin's
// own tests:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Target{
//			Kind:       hostapi.KindNotifier,
//			Path:       "notifier-hello.wasm",
//			ConfigJSON: []byte(`{"greeting":"hi"}`),
//		})
//	}
//
// As a CLI, `svidagent conformance -kind notifier -plugin
// notifier-hello.wasm [-config config.json] [-junit out.xml] [-json]`,
// which calls [Check] and prints each check with pass, fail or skip and
// its one-line reason.
//
// Without a config the suite runs with the example config the plugin
// answers in Describe (sdk.Info.ExampleConfigJSON), else "{}". A writer's
// output directory is created 0700 when missing, and is a temporary
// directory when none is given.
//
// Each check is named (see [Checks]); a failure says in one line what was
// wrong. Checks are gated on what the plugin declares in Describe: a
// plugin is never failed for an optional capability it does not claim,
// and a check that does not apply is skipped with "not applicable: ...".
//
// Every plugin: abi_exports (WASM, static, before anything runs),
// negotiation, describe, validate_rejects_invalid,
// validate_rejects_unknown_key (the valid config plus one unknown
// attribute), call_before_configure (FAILED_PRECONDITION),
// configure_idempotent, failed_configure_keeps_config,
// close_after_failed_configure, deadline, memory_flat (WASM: 10,000 calls,
// each request padded with a 4 KiB unknown field, so that a guest that
// keeps its request buffers fails within a few hundred calls),
// malformed_input (INVALID_ARGUMENT, never a crash; a known field under
// another wire type is skipped, not refused), unknown_method
// (UNIMPLEMENTED). Writers: write_idempotent, write_atomic (a concurrent
// reader hammers the files through 200 writes), write_modes,
// write_reports_paths. Issuers: issue_chain_verifies, issue_spiffe_id,
// issue_public_key, issue_ttl, issue_backend_down. Notifiers:
// notify_errors, notify_no_key_material.
//
// The checks implement themselves once, as functions returning an
// outcome; [Run] drives them as subtests of a testing.T and [Check]
// collects them for the CLI.
package conformance
