package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// hello is a minimal notifier: it logs each rotation through the host. A
// real plugin registers it with wasm.ServeNotifier or goplugin.Serve.
type hello struct{}

func (hello) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	h := sdk.HostFromContext(ctx)
	h.Log(slog.LevelInfo, "rotated", "name", ev.Name, "reason", ev.Reason.String())
	if _, err := h.HTTP(ctx, &sdk.HTTPRequest{Method: "POST", URL: "https://hooks.example.com/"}); err != nil {
		if errors.Is(err, sdk.ErrNotAllowed) {
			return sdk.Error(sdk.CodeFailedPrecondition, "add hooks.example.com to the plugin's allow { hosts }")
		}
		return err
	}
	return nil
}

// printHost is a fake host, as a plugin's tests would use.
type printHost struct{}

func (printHost) Log(level slog.Level, msg string, attrs ...any) { fmt.Println(level, msg, attrs) }

func (printHost) HTTP(context.Context, *sdk.HTTPRequest) (*sdk.HTTPResponse, error) {
	return nil, sdk.ErrNotAllowed
}

func Example() {
	var n hostapi.Notifier = hello{}
	ctx := sdk.WithHost(context.Background(), printHost{})
	err := n.Notify(ctx, &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509})
	fmt.Println(sdk.CodeOf(err), err)
	// Output:
	// INFO rotated [name web reason x509]
	// FAILED_PRECONDITION add hooks.example.com to the plugin's allow { hosts }
}

func ExampleErrorf() {
	err := sdk.Errorf(sdk.CodeUnavailable, "posting the event: %w", errors.New("connection refused"))
	fmt.Println(sdk.CodeOf(err), err)
	// Output: UNAVAILABLE posting the event: connection refused
}

func ExampleHostFromContext() {
	h := sdk.HostFromContext(context.Background()) // no host: a no-op one
	_, err := h.HTTP(context.Background(), &sdk.HTTPRequest{URL: "http://127.0.0.1:8080/"})
	fmt.Println(errors.Is(err, sdk.ErrNotAllowed))
	// Output: true
}
