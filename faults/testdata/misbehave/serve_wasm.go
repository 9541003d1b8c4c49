//go:build wasip1

package main

import (
	"context"
	"log/slog"

	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/wasm"
)

const wasmBuild = true

func logNotified(ctx context.Context, args ...any) {
	sdk.HostFromContext(ctx).Log(slog.LevelInfo, "notified", args...)
}

// With -buildmode=c-shared, init runs in _initialize; main never runs.
func init() { wasm.Serve(info, &notifier{}) }

func main() {}
