// Command guest is the test plugin of sdk/notifier: a notifier that logs
// every event, and by the event's name POSTs through the agent ("http")
// or fails with a code ("fail"); an event named "quiet" is not logged. notifier_test.go builds it both ways.
package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/svidagent/svidagent/sdk/notifier"
)

type guest struct{ url string }

func (g *guest) Validate(b []byte) notifier.FieldErrors {
	var c struct{ URL string }
	var es notifier.FieldErrors
	if err := json.Unmarshal(b, &c); err != nil || c.URL == "" {
		es.Add("url", "is required")
	}
	return es
}

func (g *guest) Configure(_ context.Context, b []byte) error {
	var c struct{ URL string }
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	g.url = c.URL
	return nil
}

func (g *guest) Notify(ctx context.Context, ev *notifier.Event) error {
	if ev.Name == "quiet" {
		return nil
	}
	// 42 has no key: logged under !BADKEY.
	notifier.Log(ctx, notifier.LevelWarn, "rotated", "name", ev.Name, "paths", len(ev.Paths), "reason", ev.Reason, 42)
	switch ev.Name {
	case "http":
		req := &notifier.HTTPRequest{Method: "POST", URL: g.url, Header: notifier.Header{}, Body: []byte(ev.Name)}
		req.Header.Set("x-test", "1")
		resp, err := notifier.HTTP(ctx, req)
		if errors.Is(err, notifier.ErrNotAllowed) {
			return notifier.Errorf(notifier.CodePermissionDenied, "posting: denied: %w", err)
		}
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || resp.Header.Get("x-reply") != "yes" || string(resp.Body) != "ok" {
			return notifier.Errorf(notifier.CodeUnavailable, "posting: status %d, x-reply %q, body %q", resp.StatusCode, resp.Header.Get("x-reply"), resp.Body)
		}
	case "fail":
		return notifier.Error(notifier.CodeUnavailable, "down on purpose")
	}
	return nil
}

func init() { notifier.Serve(notifier.Info{Name: "notifier-guest", Version: "1.0.0"}, &guest{}) }

func main() { notifier.Main() }
