// Package dispatch makes the Dispatchers that sdk/wasm, sdk/goplugin and
// sdk/inproc serve: every plugin kind, with the sdk.Host (logging, HTTP,
// counters) in the context of each call. It adds to package guest what a
// notifier built with sdk/notifier does without: the writer's and the
// issuer's certificate handling, and net/http's types.
package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/guest"
	"github.com/svidagent/svidagent/sdk/internal/lite"
	"github.com/svidagent/svidagent/sdk/internal/lite/creds"
)

// New returns a Dispatcher serving impl, which must implement exactly one
// of hostapi.Issuer, hostapi.Writer and hostapi.Notifier, and may implement
// sdk.Configurer, hostapi.Lifecycle and io.Closer. host may be nil: plugin
// code then gets a host that discards logs and refuses HTTP. The
// Dispatcher's behaviour is guest.NewNotifier's, for every kind.
//
// New links the codecs of every plugin kind into the binary (a notifier
// then carries crypto/x509 for the writer's certificates). A WASM guest
// that knows its kind uses [NewNotifier], [NewWriter] or [NewIssuer], which
// link only their own.
func New(info sdk.Info, impl any, host guest.HostCaller) (*guest.Dispatcher, error) {
	return newDispatcher(info, impl, host, map[hostapi.Kind]guest.KindFunc{
		hostapi.KindIssuer: serveIssue, hostapi.KindWriter: serveWrite, hostapi.KindNotifier: guest.ServeNotify,
	})
}

// NewNotifier is New for a notifier: only the notifier's codecs are linked.
func NewNotifier(info sdk.Info, n hostapi.Notifier, host guest.HostCaller) (*guest.Dispatcher, error) {
	return newDispatcher(info, n, host, map[hostapi.Kind]guest.KindFunc{hostapi.KindNotifier: guest.ServeNotify})
}

// NewWriter is New for a writer: only the writer's codecs are linked.
func NewWriter(info sdk.Info, w hostapi.Writer, host guest.HostCaller) (*guest.Dispatcher, error) {
	return newDispatcher(info, w, host, map[hostapi.Kind]guest.KindFunc{hostapi.KindWriter: serveWrite})
}

// NewIssuer is New for an issuer: only the issuer's codecs are linked.
func NewIssuer(info sdk.Info, i hostapi.Issuer, host guest.HostCaller) (*guest.Dispatcher, error) {
	return newDispatcher(info, i, host, map[hostapi.Kind]guest.KindFunc{hostapi.KindIssuer: serveIssue})
}

// newDispatcher checks impl and serves its kind with the KindFunc of
// serve; a kind serve has no KindFunc for cannot happen through the
// exported constructors, whose parameter types fix the kind.
func newDispatcher(info sdk.Info, impl any, host guest.HostCaller, serve map[hostapi.Kind]guest.KindFunc) (*guest.Dispatcher, error) {
	if len(info.ExampleConfigJSON) > 0 && !json.Valid(info.ExampleConfigJSON) {
		return nil, fmt.Errorf("creating the plugin dispatcher: sdk.Info.ExampleConfigJSON is not valid JSON: %q", info.ExampleConfigJSON)
	}
	var kinds []hostapi.Kind
	if _, ok := impl.(hostapi.Issuer); ok {
		kinds = append(kinds, hostapi.KindIssuer)
	}
	if _, ok := impl.(hostapi.Writer); ok {
		kinds = append(kinds, hostapi.KindWriter)
	}
	if _, ok := impl.(hostapi.Notifier); ok {
		kinds = append(kinds, hostapi.KindNotifier)
	}
	switch {
	case info.Name == "" || impl == nil:
		// guest.NewKind says which.
	case len(kinds) == 0:
		return nil, fmt.Errorf("creating the plugin dispatcher: %T implements none of hostapi.Issuer, hostapi.Writer, hostapi.Notifier; implement exactly one", impl)
	case len(kinds) > 1:
		return nil, fmt.Errorf("creating the plugin dispatcher: %T implements several plugin kinds (%v); implement exactly one", impl, kinds)
	}
	var kind hostapi.Kind
	if len(kinds) > 0 {
		kind = kinds[0]
	}
	return guest.NewKind(info, impl, kind, serve[kind], host, withSDKHost)
}

// withSDKHost is the guest.WithHost of the SDKs: plugin code finds an
// sdk.Host with sdk.HostFromContext.
func withSDKHost(ctx context.Context, call guest.HostCaller, logCtx context.Context) context.Context {
	if call == nil {
		return sdk.WithHost(ctx, nil)
	}
	return sdk.WithHost(ctx, hostImpl{call: call, ctx: logCtx})
}

func serveWrite(d *guest.Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error) {
	var req lite.WriteRequest
	if err := guest.Decode(payload, &req, "WriteRequest"); err != nil {
		return nil, err
	}
	set, err := creds.CredentialSet(&req)
	if err != nil {
		return nil, sdk.Error(sdk.CodeInvalidArgument, err.Error())
	}
	res, err := d.Impl().(hostapi.Writer).Write(ctx, set)
	if err != nil {
		return nil, err
	}
	out := &lite.WriteResponse{}
	if res != nil {
		out.Paths = res.Paths
	}
	return out, nil
}

func serveIssue(d *guest.Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error) {
	var req lite.IssueRequest
	if err := guest.Decode(payload, &req, "IssueRequest"); err != nil {
		return nil, err
	}
	r, err := creds.IssueRequestOf(&req)
	if err != nil {
		return nil, sdk.Error(sdk.CodeInvalidArgument, err.Error())
	}
	info := d.Info()
	c, err := d.Impl().(hostapi.Issuer).Issue(ctx, r)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "plugin %s: Issue returned neither credentials nor an error", info.Name)
	}
	withKeys := slices.Contains(info.Capabilities, abi.CapabilityIssuerReturnsKeys)
	if !withKeys {
		for _, s := range c.X509SVIDs {
			if s.PrivateKey != nil {
				return nil, sdk.Errorf(sdk.CodeInternal, "plugin %s returned a private key for %s without declaring the %q capability; sign the request's CSR instead, or declare it", info.Name, s.ID, abi.CapabilityIssuerReturnsKeys)
			}
		}
	}
	resp, err := creds.IssueResponseOf(c, withKeys)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "plugin %s: encoding its credentials: %w", info.Name, err)
	}
	return resp, nil
}
