// Command notifier is a starter for a svidagent notifier plugin: copy this
// directory, rename the plugin in info, and replace Notify's body. The same
// source builds as a WebAssembly module (3.5 MB) and as a go-plugin
// executable:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o notifier.wasm .
//	go build -o notifier .
//
// It uses sdk/notifier, which links no certificate or HTTP package into the
// module. conformance_test.go runs the conformance suite over it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"github.com/svidagent/svidagent/sdk/notifier"
)

// info is the plugin's answer to Describe.
// ExampleConfigJSON is what `svidagent conformance -plugin notifier.wasm`
// runs with when given no -config.
var info = notifier.Info{Name: "notifier-template", Version: "0.1.0",
	ExampleConfigJSON: []byte(`{"message":"credentials rotated"}`)}

// With -buildmode=c-shared, init runs in the module's _initialize and main
// never runs; built for the machine, main serves over go-plugin.
func init() { notifier.Serve(info, &logNotifier{}) }

func main() { notifier.Main() }

// config is the plugin's config {} block, as JSON.
type config struct {
	// Message is logged on every rotation. Required.
	Message string `json:"message"`
}

type logNotifier struct {
	mu  sync.RWMutex
	cfg config
}

var (
	_ notifier.Notifier   = (*logNotifier)(nil)
	_ notifier.Configurer = (*logNotifier)(nil)
)

func parse(b []byte) (config, notifier.FieldErrors) {
	var c config
	var es notifier.FieldErrors
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

// Validate implements notifier.Configurer.
func (n *logNotifier) Validate(b []byte) notifier.FieldErrors { _, es := parse(b); return es }

// Configure implements notifier.Configurer. It may be called again with a
// new config and must then behave as if only the new one was applied.
func (n *logNotifier) Configure(_ context.Context, b []byte) error {
	c, es := parse(b)
	if len(es) > 0 {
		return es
	}
	n.mu.Lock()
	n.cfg = c
	n.mu.Unlock()
	return nil
}

// Notify implements notifier.Notifier. It receives identities and paths,
// never keys. Return an error (notifier.Errorf with a code) when it fails.
func (n *logNotifier) Notify(ctx context.Context, ev *notifier.Event) error {
	n.mu.RLock()
	msg := n.cfg.Message
	n.mu.RUnlock()
	notifier.Log(ctx, notifier.LevelInfo, msg, "name", ev.Name, "reason", ev.Reason.String(), "paths", len(ev.Paths))
	return nil
}
