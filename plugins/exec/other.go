//go:build !unix

package exec

import (
	"fmt"
	"runtime"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

// On a system without unix signals and process groups the notifier is
// registered so that a config naming it is refused at load, with the
// platform named, instead of as an unknown type.
func init() {
	registry.RegisterNotifier("exec", DefaultConfig, func(*Config, registry.Env) (hostapi.Notifier, error) {
		return nil, unavailable()
	})
}

func unavailable() error {
	return fmt.Errorf("notifier.exec is not available on %s: it needs commands under the agent's reaper (process groups and signals); use a plugin", runtime.GOOS)
}

// Validate refuses every config on this system.
func (c *Config) Validate() error {
	var errs hostapi.FieldErrors
	errs.Add("", unavailable().Error())
	return errs.Err()
}
