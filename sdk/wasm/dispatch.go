package wasm

import (
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/dispatch"
	"github.com/svidagent/svidagent/sdk/internal/guest"
	"github.com/svidagent/svidagent/sdk/internal/wasmguest"
)

// The constructors of Serve and of the kind-specific Serve functions.
// Serve's links every kind's codecs; each of the others links only its
// kind's.

func anyKind(info sdk.Info, impl any) wasmguest.NewDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.New(info, impl, h) }
}

func notifier(info sdk.Info, n hostapi.Notifier) wasmguest.NewDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.NewNotifier(info, n, h) }
}

func writer(info sdk.Info, w hostapi.Writer) wasmguest.NewDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.NewWriter(info, w, h) }
}

func issuer(info sdk.Info, i hostapi.Issuer) wasmguest.NewDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.NewIssuer(info, i, h) }
}
