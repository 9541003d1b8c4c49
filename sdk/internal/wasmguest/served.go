// Package wasmguest is the WebAssembly side of hostapi/ABI.md that every
// Go SDK shares: the exports (svidagent_abi_v1, svidagent_alloc,
// svidagent_free, svidagent_call), the host imports, and the one
// Dispatcher a module serves. sdk/wasm and sdk/notifier both register
// with it, so a module that imports both still has each export once, and
// serves what the first registration made.
//
// Only the exports need GOOS=wasip1; the registry and [HandleEnvelope]
// build everywhere, so that sdk/wasm's stub build drives the same code
// from a host test.
package wasmguest

import (
	"context"
	"errors"
	"sync"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk/core"
	"github.com/svidagent/svidagent/sdk/internal/guest"
)

// NewDispatcher makes the module's Dispatcher over the host's services.
type NewDispatcher func(guest.HostCaller) (*guest.Dispatcher, error)

// served is what Serve recorded: the dispatcher, or why there is none.
var served struct {
	mu  sync.Mutex
	d   *guest.Dispatcher
	err error
}

// errServedTwice is recorded when a module registers a second plugin.
var errServedTwice = errors.New("the plugin was served more than once (sdk/wasm's Serve, ServeNotifier, ServeWriter, ServeIssuer and sdk/notifier's Serve count alike); serve it once, from init")

// Serve records the dispatcher that newD makes over host. It returns an
// error (and records it, so that every call answers with it) when the
// plugin is unusable or a plugin was served already.
func Serve(newD NewDispatcher, host guest.HostCaller) error {
	served.mu.Lock()
	defer served.mu.Unlock()
	if served.d != nil || served.err != nil {
		served.d, served.err = nil, errServedTwice
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
		return nil, errors.New("the module serves no plugin: call sdk/wasm's Serve (or ServeNotifier, ServeWriter, ServeIssuer), or sdk/notifier's Serve, from an init function of package main")
	}
	return served.d, nil
}

// HandleEnvelope answers one request envelope (hostapi/ABI.md §4) with a
// response envelope. It never panics: a malformed envelope is answered
// with INVALID_ARGUMENT, a module that serves no plugin with
// FAILED_PRECONDITION.
func HandleEnvelope(ctx context.Context, req []byte) []byte {
	method, payload, err := abi.DecodeRequest(req)
	if err != nil {
		return abi.EncodeResponse(uint32(core.CodeInvalidArgument), "sdk/wasm: "+err.Error(), nil)
	}
	d, err := dispatcher()
	if err != nil {
		return abi.EncodeResponse(uint32(core.CodeFailedPrecondition), "sdk/wasm: "+err.Error(), nil)
	}
	return abi.EncodeResponse(d.Handle(ctx, method, payload))
}

// Reset forgets what Serve recorded. Tests of the stub build use it to
// serve several plugins in one process.
func Reset() {
	served.mu.Lock()
	served.d, served.err = nil, nil
	served.mu.Unlock()
}
