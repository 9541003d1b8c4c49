// Package goplugin serves a svidagent plugin as a hashicorp/go-plugin
// subprocess: the agent starts the executable, and the two speak host API
// v1 over gRPC with automatic mutual TLS (hostapi/ABI.md §8).
//
// A complete notifier plugin:
//
//	package main
//
//	import (
//		"context"
//		"log/slog"
//
//		"github.com/svidagent/svidagent/hostapi"
//		"github.com/svidagent/svidagent/sdk"
//		"github.com/svidagent/svidagent/sdk/goplugin"
//	)
//
//	type notifier struct{}
//
//	func (notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
//		sdk.HostFromContext(ctx).Log(slog.LevelInfo, "rotated", "svid", ev.Name)
//		return nil
//	}
//
//	func main() {
//		goplugin.Serve(sdk.Info{Name: "notifier-hello", Version: "1.0.0"}, notifier{})
//	}
//
// Build it with go build, then pin it in the agent's config:
//
//	plugin "hello" {
//	  command = "/usr/libexec/svidagent/notifier-hello"
//	  sha256  = "…"   # svidagent plugin hash /usr/libexec/svidagent/notifier-hello
//	}
//
// The same plugin source builds as a WASM guest with sdk/wasm when it needs
// nothing of the host OS.
//
// # How calls are served
//
// The gRPC server registers svidagent.plugin.v1.Plugin and the plugin's
// kind service, served raw: each method hands the request's protobuf bytes,
// as they came off the wire, to the same dispatcher the WASM SDK uses
// (sdk/internal/guest), so both runtimes behave alike and a request is decoded
// once. Calls run on gRPC stream workers (goroutines kept between calls).
//
// # Host services
//
// The agent serves the host services it granted (Logger always, HTTP with
// an allow { hosts = [...] } block) on go-plugin's GRPCBroker and sends the
// broker id in DescribeRequest.host_broker_id; the plugin dials it on the
// first host call. Plugin code reaches them with sdk.HostFromContext.
//
// # Logs
//
// The plugin's standard error is the agent's: go-plugin's own log and
// [Logger] write hclog JSON lines there, and the agent re-emits each at its
// level through its log, tagged component=plugin plugin=<name> and rate
// limited. Anything else written to standard error or standard output is
// re-emitted line by line at info (at error from a Go panic on).
package goplugin
