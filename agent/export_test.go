package agent

import (
	"context"

	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/load"
)

// WithPluginOpener has the agent open its external plugins with open
// instead of load.Open: tests serve in-process plugins whose start they
// control.
func WithPluginOpener(open func(context.Context, *config.External, load.Env) (load.Conn, error)) Option {
	return func(a *Agent) { a.openConn = open }
}
