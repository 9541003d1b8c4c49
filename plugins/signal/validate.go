//go:build unix

package signal

import (
	"time"

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
	if c.RetryBackoff != "" {
		if d, err := time.ParseDuration(c.RetryBackoff); err != nil || d <= 0 {
			errs.Add("retry_backoff", `must be a positive duration such as "1s" or "500ms"`)
		}
	}
	return errs.Err()
}

// retryBackoff returns RetryBackoff, validated, or its default.
func (c *Config) retryBackoff() time.Duration {
	d, err := time.ParseDuration(c.RetryBackoff)
	if err != nil || d <= 0 {
		return DefaultRetryBackoff
	}
	return d
}
