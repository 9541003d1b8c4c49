package wasm

import (
	"context"
	"errors"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/dispatch"
	"github.com/svidagent/svidagent/sdk/internal/guest"
)

// served is what Serve recorded: the dispatcher, or why there is none.
var served struct {
	mu  sync.Mutex
	d   *guest.Dispatcher
	err error
}

// newDispatcher is one of guest's constructors, bound to the plugin's
// info and implementation: dispatch.New for Serve, or the constructor of one
// kind (dispatch.NewNotifier for ServeNotifier...), which links only that
// kind's codecs.
type newDispatcher func(guest.HostCaller) (*guest.Dispatcher, error)

// serve records the dispatcher that newD makes. It returns an error (and
// records it, so that every call answers with it) when the plugin is
// unusable or Serve was already called.
func serve(newD newDispatcher, host guest.HostCaller) error {
	served.mu.Lock()
	defer served.mu.Unlock()
	if served.d != nil || served.err != nil {
		served.d, served.err = nil, errors.New("sdk/wasm: Serve (or ServeNotifier, ServeWriter, ServeIssuer) was called more than once; call one of them once, from init")
		return served.err
	}
	d, err := newD(host)
	if err != nil {
		served.err = err
		return err
	}
	served.d = d
	return nil
}

func dispatcher() (*guest.Dispatcher, error) {
	served.mu.Lock()
	defer served.mu.Unlock()
	switch {
	case served.err != nil:
		return nil, served.err
	case served.d == nil:
		return nil, errors.New("sdk/wasm: the plugin did not call wasm.Serve (or ServeNotifier, ServeWriter, ServeIssuer); call it from an init function of package main")
	}
	return served.d, nil
}

// handleEnvelope answers one request envelope (hostapi/ABI.md §4) with a
// response envelope. It never panics: a malformed envelope is answered
// with INVALID_ARGUMENT, a plugin that did not Serve with
// FAILED_PRECONDITION.
func handleEnvelope(ctx context.Context, req []byte) []byte {
	method, payload, err := abi.DecodeRequest(req)
	if err != nil {
		return abi.EncodeResponse(uint32(sdk.CodeInvalidArgument), "sdk/wasm: "+err.Error(), nil)
	}
	d, err := dispatcher()
	if err != nil {
		return abi.EncodeResponse(uint32(sdk.CodeFailedPrecondition), err.Error(), nil)
	}
	return abi.EncodeResponse(d.Handle(ctx, method, payload))
}

// The constructors of Serve and of the kind-specific Serve functions.
// Serve's links every kind's codecs; each of the others links only its
// kind's.

func anyKind(info sdk.Info, impl any) newDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.New(info, impl, h) }
}

func notifier(info sdk.Info, n hostapi.Notifier) newDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.NewNotifier(info, n, h) }
}

func writer(info sdk.Info, w hostapi.Writer) newDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.NewWriter(info, w, h) }
}

func issuer(info sdk.Info, i hostapi.Issuer) newDispatcher {
	return func(h guest.HostCaller) (*guest.Dispatcher, error) { return dispatch.NewIssuer(info, i, h) }
}
