// Command notifier is a starter for a svidagent notifier plugin: copy this
// directory, rename the plugin in info, and replace Notify's body. The same
// source builds as a WebAssembly module and as a go-plugin subprocess:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o notifier.wasm .
//	go build -o notifier .
//
// conformance_test.go runs the conformance suite over it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// info is the plugin's answer to Describe.
// ExampleConfigJSON is what `svidagent conformance -plugin notifier.wasm`
// runs with when given no -config.
var info = sdk.Info{Name: "notifier-template", Version: "0.1.0",
	ExampleConfigJSON: []byte(`{"message":"credentials rotated"}`)}

// config is the plugin's config {} block, as JSON.
type config struct {
	// Message is logged on every rotation. Required.
	Message string `json:"message"`
}

type notifier struct {
	mu  sync.RWMutex
	cfg config
}

var (
	_ hostapi.Notifier = (*notifier)(nil)
	_ sdk.Configurer   = (*notifier)(nil)
)

func parse(b []byte) (config, hostapi.FieldErrors) {
	var c config
	var es hostapi.FieldErrors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		es.Add("", "the config must be a JSON object with message: "+err.Error())
		return c, es
	}
	if c.Message == "" {
		es.Add("message", `is required, e.g. "credentials rotated"`)
	}
	return c, es
}

// Validate implements sdk.Configurer.
func (n *notifier) Validate(b []byte) hostapi.FieldErrors { _, es := parse(b); return es }

// Configure implements sdk.Configurer. It may be called again with a new
// config and must then behave as if only the new one was applied.
func (n *notifier) Configure(_ context.Context, b []byte) error {
	c, es := parse(b)
	if len(es) > 0 {
		return es
	}
	n.mu.Lock()
	n.cfg = c
	n.mu.Unlock()
	return nil
}

// Notify implements hostapi.Notifier. It receives identities and paths,
// never keys. Return an error (sdk.Errorf with a code) when it fails.
func (n *notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	n.mu.RLock()
	msg := n.cfg.Message
	n.mu.RUnlock()
	sdk.HostFromContext(ctx).Log(slog.LevelInfo, msg, "name", ev.Name, "reason", ev.Reason.String(), "paths", len(ev.Paths))
	return nil
}
