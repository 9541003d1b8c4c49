//go:build !unix || svidagent_nogoplugin

package load

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/svidagent/svidagent/internal/config"
)

// errNoCommand says why this build has no subprocess runtime.
var errNoCommand = func() error {
	if runtime.GOOS == "windows" {
		return errors.New("subprocess (command) plugins need a unix system; on windows use a wasm plugin")
	}
	return errors.New("this svidagent was built without the go-plugin runtime (tag svidagent_nogoplugin); use a wasm plugin or a full build")
}()

// CommandRuntimeErr says why this build cannot run subprocess plugins.
func CommandRuntimeErr() error { return errNoCommand }

func openCommand(_ context.Context, e *config.External, _ Env) (Conn, error) {
	return nil, fmt.Errorf("opening plugin %q: %w", e.Name, errNoCommand)
}

func inspectCommand(context.Context, string, string) (Info, error) { return Info{}, errNoCommand }
