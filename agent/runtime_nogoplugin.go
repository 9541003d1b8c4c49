//go:build svidagent_nogoplugin

// This build leaves out the go-plugin runtime (docs/EDGE.md): a plugin
// block with command = ... fails to load with an error that says so.

package agent

import (
	"context"
	"errors"

	"github.com/svidagent/svidagent/internal/config"
)

// errNoGoPlugin is what loading a command plugin returns in a build
// without the go-plugin runtime.
var errNoGoPlugin = errors.New("this svidagent was built without the go-plugin runtime (tag svidagent_nogoplugin); use a wasm plugin or a full build")

func init() { runtimes[config.RuntimeCommand] = openCommand }

func openCommand(context.Context, *config.External, runtimeEnv) (conn, error) {
	return nil, errNoGoPlugin
}
