//go:build !wasip1

package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/goplugin"
	"github.com/svidagent/svidagent/sdk/wasm"
)

// served is what Serve recorded for Main.
var served struct {
	mu    sync.Mutex
	info  Info
	n     Notifier
	twice bool
}

// Serve records n as the notifier this executable serves; Main serves it.
// Call it once, from an init function of package main.
//
// It also serves n in sdk/wasm's stub build, so that a test of the plugin's
// package drives it with wasm.Call through the same dispatch as the
// module's (see examples/notifier-webhook's tests).
func Serve(info Info, n Notifier) {
	served.mu.Lock()
	defer served.mu.Unlock()
	if served.n != nil {
		served.twice = true
	}
	served.info, served.n = info, n
	wasm.ServeNotifier(info, n)
}

// Main serves the notifier that Serve recorded over go-plugin
// (sdk/goplugin.Serve) and never returns. Run by hand instead of by the
// agent, the executable says so and exits with status 1; without a Serve,
// or after two, it says that and exits with status 1.
func Main() {
	served.mu.Lock()
	info, n, twice := served.info, served.n, served.twice
	served.mu.Unlock()
	switch {
	case n == nil:
		fmt.Fprintln(os.Stderr, "svidagent plugin: notifier.Main: no notifier; call notifier.Serve from an init function of package main")
		os.Exit(1)
	case twice:
		fmt.Fprintln(os.Stderr, "svidagent plugin: notifier.Serve was called more than once; call it once, from init")
		os.Exit(1)
	}
	goplugin.Serve(info, n)
}

// On the machine, the plugin runs under sdk/goplugin or sdk/inproc, whose
// calls carry an sdk.Host: logging and HTTP go through it.

func logTo(ctx context.Context, level Level, msg string, kv []any) {
	sdk.HostFromContext(ctx).Log(slog.Level(level), msg, kv...)
}

func httpTo(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
	resp, err := sdk.HostFromContext(ctx).HTTP(ctx, &sdk.HTTPRequest{
		Method: req.Method, URL: req.URL, Header: http.Header(req.Header), Body: req.Body, Timeout: req.Timeout,
	})
	if err != nil {
		return nil, err
	}
	return &HTTPResponse{StatusCode: resp.StatusCode, Header: Header(resp.Header), Body: resp.Body}, nil
}
