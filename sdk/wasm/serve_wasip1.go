//go:build wasip1

package wasm

import (
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/wasmguest"
)

// Serve registers impl as the plugin this module serves. Call it once,
// from an init function of package main: with -buildmode=c-shared, Go runs
// package initialisation in _initialize and never calls main.
//
// impl implements exactly one of hostapi.Issuer, hostapi.Writer and
// hostapi.Notifier, and optionally sdk.Configurer and io.Closer. If it is
// unusable, Serve logs why through the host at error level and every call
// answers FAILED_PRECONDITION with the reason.
//
// Serve links the code of every plugin kind into the module; a plugin of
// one kind is smaller served with [ServeNotifier], [ServeWriter] or
// [ServeIssuer] (the notifier template: 6.0 MB instead of 7.8 MB).
func Serve(info sdk.Info, impl any) { serveOrLog(anyKind(info, impl)) }

// ServeNotifier is [Serve] for a notifier: the module links no writer or
// issuer code (no certificate parsing, no JOSE).
func ServeNotifier(info sdk.Info, n hostapi.Notifier) { serveOrLog(notifier(info, n)) }

// ServeWriter is [Serve] for a writer: the module links no notifier or
// issuer code.
func ServeWriter(info sdk.Info, w hostapi.Writer) { serveOrLog(writer(info, w)) }

// ServeIssuer is [Serve] for an issuer: the module links no notifier or
// writer code.
func ServeIssuer(info sdk.Info, i hostapi.Issuer) { serveOrLog(issuer(info, i)) }

func serveOrLog(newD wasmguest.NewDispatcher) {
	if err := wasmguest.Serve(newD, wasmguest.HostCall); err != nil {
		wasmguest.LogError("svidagent plugin: " + err.Error())
	}
}
