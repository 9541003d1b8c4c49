package wasm

import (
	"context"
	"errors"
	"sync"

	"github.com/svidagent/svidagent/internal/envelope"
	"github.com/svidagent/svidagent/internal/guest"
	"github.com/svidagent/svidagent/sdk"
)

// served is what Serve recorded: the dispatcher, or why there is none.
var served struct {
	mu  sync.Mutex
	d   *guest.Dispatcher
	err error
}

// serve records the dispatcher of impl. It returns an error (and records
// it, so that every call answers with it) when impl is unusable or Serve
// was already called.
func serve(info sdk.Info, impl any, host guest.HostCaller) error {
	served.mu.Lock()
	defer served.mu.Unlock()
	if served.d != nil || served.err != nil {
		served.d, served.err = nil, errors.New("sdk/wasm: Serve was called more than once; call it once, from init")
		return served.err
	}
	d, err := guest.New(info, impl, host)
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
		return nil, errors.New("sdk/wasm: the plugin did not call wasm.Serve; call it from an init function of package main")
	}
	return served.d, nil
}

// handleEnvelope answers one request envelope (hostapi/ABI.md §4) with a
// response envelope. It never panics: a malformed envelope is answered
// with INVALID_ARGUMENT, a plugin that did not Serve with
// FAILED_PRECONDITION.
func handleEnvelope(ctx context.Context, req []byte) []byte {
	method, payload, err := envelope.DecodeRequest(req)
	if err != nil {
		return envelope.EncodeResponse(uint32(sdk.CodeInvalidArgument), "sdk/wasm: "+err.Error(), nil)
	}
	d, err := dispatcher()
	if err != nil {
		return envelope.EncodeResponse(uint32(sdk.CodeFailedPrecondition), err.Error(), nil)
	}
	return envelope.EncodeResponse(d.Handle(ctx, method, payload))
}
