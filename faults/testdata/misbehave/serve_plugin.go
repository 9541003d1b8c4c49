//go:build !wasip1

package main

import (
	"context"

	"github.com/svidagent/svidagent/sdk/goplugin"
)

const wasmBuild = false

func logNotified(_ context.Context, args ...any) { goplugin.Logger().Info("notified", args...) }

func main() { goplugin.Serve(info, &notifier{}) }
