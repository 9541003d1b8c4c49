// Package guest is the plugin side of host API v1, shared by every SDK
// (sdk/wasm, sdk/goplugin, sdk/inproc and sdk/notifier): a [Dispatcher]
// takes a call as a method name and protobuf bytes, decodes it with
// sdk/internal/lite (a hand-written codec: no protobuf reflection, no
// generated code), runs the plugin's Go implementation and encodes the
// answer with a status code of hostapi/ABI.md. It owns the plugin's
// states: nothing but Describe and Validate before a Configure succeeded,
// a base.Lifecycle started after each successful Configure and stopped
// before the next and at Close, nothing after Close. The runtime-specific
// transport (the WASM exports, the gRPC server) stays in the SDKs.
//
// The package links what a notifier needs and nothing more: no
// certificate parsing, no net/http, no JSON decoder. Its imports are
// hostapi/base, sdk/core, hostapi/v1/abi and the codec. The other kinds,
// and the sdk.Host that plugin code finds in its context, come from
// sdk/internal/dispatch, which builds on [NewKind]:
//
//	d, err := dispatch.New(sdk.Info{Name: "notifier-webhook"}, impl, hostCaller)
//	if err != nil { ... }
//	code, msg, resp := d.Handle(ctx, abi.Notifier_Notify_FullMethodName, req)
//
// sdk/notifier serves a notifier with [NewNotifier] and a host of its own,
// which is what keeps a Go notifier module under 4 MiB
// (docs/PERFORMANCE.md, §6).
//
// It is not part of the public API.
package guest
