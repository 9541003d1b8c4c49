// Package wasm serves a Go plugin as a svidagent WebAssembly module, per
// hostapi/ABI.md. The plugin implements one of hostapi.Issuer,
// hostapi.Writer or hostapi.Notifier (optionally sdk.Configurer and
// io.Closer) and registers it from an init function, with the Serve
// function of its kind:
//
//	package main
//
//	import (
//		"github.com/svidagent/svidagent/sdk"
//		"github.com/svidagent/svidagent/sdk/wasm"
//	)
//
//	func init() { wasm.ServeNotifier(sdk.Info{Name: "notifier-hello", Version: "0.1.0"}, &hello{}) }
//
//	func main() {} // required by package main; never called
//
// [ServeNotifier], [ServeWriter] and [ServeIssuer] link only their kind's
// code. [Serve] takes any kind and so links all three (a notifier then
// carries the writer's certificate parsing): it works, and the notifier
// template served with it is 7.8 MB instead of 6.0 MB.
//
// Build it as a WASI reactor with plain Go (1.24 or later):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm ./path
//
// With -buildmode=c-shared, Go exports memory and _initialize, which runs
// package initialisation (and so Serve); main is never called. This
// package adds the exports svidagent_abi_v1, svidagent_alloc,
// svidagent_free and svidagent_call with //go:wasmexport, and imports log,
// call and take from module svidagent_host_v1. Nothing of the host
// (wazero, go-plugin, gRPC) is linked in, and no protobuf reflection or
// generated code: messages are encoded by sdk/internal/lite. A notifier
// module is about 6 MB (the template: 5.99 MB; `bench/guestsize.sh` lists
// every example) and needs about 7.5 MiB of linear memory in steady state,
// well within the agent's default 32 MiB limit.
//
// Memory: svidagent_alloc returns the address of a Go []byte that is kept
// reachable in a map keyed by its address until svidagent_free (the
// request buffer: until svidagent_call returns), so the collector neither
// frees nor — Go's collector being non-moving — moves it while the host
// holds the address. svidagent_call never traps on bad input: a malformed
// envelope is answered with INVALID_ARGUMENT, a panic in plugin code with
// INTERNAL.
//
// Testing: when GOOS is not wasip1 this package is a stub: Serve records
// the plugin and [Call] (stub build only) drives it through the same
// dispatch, so that `go test` runs the plugin's logic on the host, with a
// fake sdk.Host set by sdk.WithHost:
//
//	func TestNotify(t *testing.T) {
//		ctx := sdk.WithHost(context.Background(), fakeHost{})
//		err := wasm.Call(ctx, "svidagent.plugin.notifier.v1.Notifier/Notify",
//			&notifierv1.NotifyRequest{Name: "web"}, nil)
//		...
//	}
package wasm
