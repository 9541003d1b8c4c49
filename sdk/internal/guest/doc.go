// Package guest is the plugin side of host API v1, shared by the SDKs of
// both runtimes (sdk/wasm and sdk/goplugin): a [Dispatcher] takes a call as
// a method name and protobuf bytes, decodes it with sdk/internal/lite (a
// hand-written codec: no protobuf reflection, no generated code), runs the
// plugin's Go implementation (hostapi.Issuer, hostapi.Writer or
// hostapi.Notifier, optionally sdk.Configurer, hostapi.Lifecycle and
// io.Closer) and encodes the answer with a status code of hostapi/ABI.md.
// A hostapi.Lifecycle is started after each successful Configure and
// stopped before the next Configure and at Close. The runtime-specific
// transport (the WASM exports, the gRPC server) stays in the SDKs.
//
// It exists so that the SDKs share one dispatch (sdk/inproc exposes it to
// the host for in-process plugins); it is not part of the
// public API.
//
//	d, err := guest.New(sdk.Info{Name: "notifier-webhook"}, impl, hostCaller)
//	if err != nil { ... }
//	code, msg, resp := d.Handle(ctx, abi.Notifier_Notify_FullMethodName, req)
//
// New serves any kind, so it links every kind's conversions: a writer's
// certificate and key parsing (crypto/x509) and JWT parsing (go-jose) end
// up in a notifier too. [NewNotifier], [NewWriter] and [NewIssuer] take
// the kind's interface and link only that kind's; sdk/wasm's
// ServeNotifier, ServeWriter and ServeIssuer use them, which is most of
// what makes a Go notifier module 6 MB instead of 11 MB
// (docs/PERFORMANCE.md, §6).
//
// Plugin code receives the agent's services through the context:
// sdk.HostFromContext(ctx) is a host whose Log and HTTP go through the
// HostCaller given to New (svidagent.host.v1.Logger/Log and
// svidagent.host.v1.HTTP/Request).
package guest
