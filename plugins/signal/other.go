//go:build !unix

package signal

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
	registry.RegisterNotifier("signal", DefaultConfig, func(*Config, registry.Env) (hostapi.Notifier, error) {
		return nil, unavailable()
	})
}

func unavailable() error {
	return fmt.Errorf("notifier.signal is not available on %s: it needs signals to a pid file; use an exec notifier on a platform with signals, or a plugin", runtime.GOOS)
}

// Validate refuses every config on this system.
func (c *Config) Validate() error {
	var errs hostapi.FieldErrors
	errs.Add("", unavailable().Error())
	return errs.Err()
}
