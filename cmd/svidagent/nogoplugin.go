//go:build svidagent_nogoplugin

// This build leaves out the go-plugin runtime (docs/EDGE.md): plugin
// inspect and validate refuse command plugins, and conformance is not
// available, with an error that says so.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/pluginhost"
)

var errNoGoPlugin = errors.New("this svidagent was built without the go-plugin runtime (tag svidagent_nogoplugin); use a wasm plugin or a full build")

// commandRuntimeErr: this build runs no command plugins.
func commandRuntimeErr() error { return errNoGoPlugin }

func inspectCommand(context.Context, string, string, *inspection) error { return errNoGoPlugin }

func openCommandForValidate(context.Context, *config.External, *slog.Logger) (pluginhost.Conn, error) {
	return nil, errNoGoPlugin
}

// conformanceCmd: the conformance suite drives go-plugin executables too,
// so this build leaves it out.
func conformanceCmd(_ []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "svidagent conformance: %v\n", errNoGoPlugin)
	return exitRuntime
}
