//go:build unix

package signal

import (
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc"
)

// Validate reports every problem with c as hostapi.FieldErrors.
func (c *Config) Validate() error {
	var errs hostapi.FieldErrors
	if c.PIDFile == "" {
		errs.Add("pid_file", `is required: set it to the file that holds the pid to signal, for example "/run/nginx.pid"`)
	}
	if c.Signal == "" {
		errs.Add("signal", `is required: set it to the signal the process reloads on, for example "SIGHUP" or "SIGUSR1"`)
	} else if _, err := proc.ParseSignal(c.Signal); err != nil {
		errs.Add("signal", err.Error())
	}
	return errs.Err()
}
