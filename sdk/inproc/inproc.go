// Package inproc serves a Go plugin implementation inside the calling
// process, with the same dispatch that sdk/wasm and sdk/goplugin run in a
// plugin: calls go in as method names and protobuf bytes and come back as
// a status code of hostapi/ABI.md, a message and protobuf bytes.
//
// It exists so that a host can run a plugin implementation without a
// sandbox or a subprocess (conformance.Run's in-process targets, the
// agent's own tests) through the exact code path of a real plugin. A
// plugin author does not need it: serve with sdk/wasm or sdk/goplugin.
//
//	p, err := inproc.New(sdk.Info{Name: "notifier-example"}, impl, nil)
//	if err != nil { ... }
//	code, msg, resp := p.Handle(ctx, abi.Plugin_Describe_FullMethodName, req)
package inproc

import (
	"context"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/guest"
)

// HostCaller calls a host service for the plugin: method is in gRPC's full
// form (abi.HTTP_Request_FullMethodName), req and resp are protobuf bytes,
// and code and msg are the answer's status (0 and "" on success).
type HostCaller func(ctx context.Context, method string, req []byte) (code uint32, msg string, resp []byte)

// Plugin is a plugin implementation served in process. Its methods are
// safe for concurrent use.
type Plugin struct{ d *guest.Dispatcher }

// New returns impl served in process. impl implements exactly one of
// hostapi.Issuer, hostapi.Writer and hostapi.Notifier, and may implement
// sdk.Configurer, hostapi.Lifecycle and io.Closer, as for sdk/wasm.Serve.
// host may be nil: plugin code then gets a host that discards logs and
// refuses HTTP.
func New(info sdk.Info, impl any, host HostCaller) (*Plugin, error) {
	var h guest.HostCaller
	if host != nil {
		h = guest.HostCaller(host)
	}
	d, err := guest.New(info, impl, h)
	if err != nil {
		return nil, err
	}
	return &Plugin{d: d}, nil
}

// Kind returns the plugin's kind.
func (p *Plugin) Kind() hostapi.Kind { return p.d.Kind() }

// Handle serves one call. method is "<package>.<Service>/<Method>", with or
// without gRPC's leading "/"; payload is the request message, protobuf
// binary. It returns a status code of hostapi/ABI.md, a message (empty on
// success) and the response message (empty on error). A panic in plugin
// code is answered with INTERNAL.
func (p *Plugin) Handle(ctx context.Context, method string, payload []byte) (code uint32, msg string, resp []byte) {
	return p.d.Handle(ctx, method, payload)
}
