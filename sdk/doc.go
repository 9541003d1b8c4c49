// Package sdk is what svidagent plugin authors import: the types a plugin
// sees whatever runtime serves it (a WebAssembly module through sdk/wasm,
// a go-plugin subprocess through sdk/goplugin). It links nothing of the
// host: no wazero, no go-plugin, no gRPC, and builds for GOOS=wasip1.
//
// A notifier is smaller written with sdk/notifier, which imports neither
// this package nor hostapi (a 3.7 MiB module instead of 6 MB); its types
// are aliases of these, so such a notifier is a hostapi.Notifier too.
//
// A plugin implements exactly one of hostapi.Issuer, hostapi.Writer and
// hostapi.Notifier — the interfaces the built-in plugins implement — and
// optionally [Configurer] (its config {} block, as JSON) and io.Closer.
// The agent's services reach plugin code through the context of every
// call:
//
//	type hello struct{}
//
//	func (hello) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
//		h := sdk.HostFromContext(ctx)
//		h.Log(slog.LevelInfo, "rotated", "name", ev.Name)
//		_, err := h.HTTP(ctx, &sdk.HTTPRequest{Method: "POST", URL: "https://hooks.example.com/"})
//		return err // errors.Is(err, sdk.ErrNotAllowed) without an allow { hosts } grant
//	}
//
//	func init() { wasm.ServeNotifier(sdk.Info{Name: "notifier-hello", Version: "0.1.0"}, hello{}) }
//
// The lifecycle is the same in every runtime: Describe, Validate,
// Configure (possibly again, with a new config; one that fails leaves the
// previous config in effect), calls of the kind's method (FAILED_PRECONDITION
// before a successful Configure, also for a plugin without config), Close.
// [Info].ExampleConfigJSON, a valid config block, lets `svidagent
// conformance` run the plugin without a hand-written config. Errors reach the agent with a status code: a plain error
// is UNKNOWN; [Error] and [Errorf] choose one (UNAVAILABLE for a backend
// that is down, say); context deadlines are DEADLINE_EXCEEDED.
package sdk
