package inproc

import (
	"context"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/dispatch"
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
	d, err := dispatch.New(info, impl, h)
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
