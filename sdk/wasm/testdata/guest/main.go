// Command guest is the test plugin of sdk/wasm: a notifier that logs,
// POSTs the event's name to its configured url through the host, and
// panics on request. Built by the package's tests with the command in
// doc.go.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/wasm"
)

type notifier struct{ url string }

func (n *notifier) Validate(b []byte) hostapi.FieldErrors {
	var c struct{ URL string }
	var es hostapi.FieldErrors
	if err := json.Unmarshal(b, &c); err != nil || c.URL == "" {
		es.Add("url", "required")
	}
	return es
}

func (n *notifier) Configure(_ context.Context, b []byte) error {
	var c struct{ URL string }
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	n.url = c.URL
	return nil
}

func (n *notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	h := sdk.HostFromContext(ctx)
	h.Log(slog.LevelInfo, "notifying", "name", ev.Name, "paths", len(ev.Paths))
	switch ev.Name {
	case "panic":
		panic("guest panic on purpose")
	case "http":
		resp, err := h.HTTP(ctx, &sdk.HTTPRequest{Method: "POST", URL: n.url, Body: []byte(ev.Name)})
		if err != nil {
			return fmt.Errorf("posting: %w", err)
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("posting: status %d: %s", resp.StatusCode, resp.Body)
		}
	}
	return nil
}

func init() { wasm.ServeNotifier(sdk.Info{Name: "test-guest", Version: "1.0.0"}, &notifier{}) }

func main() {}
