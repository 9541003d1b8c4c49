//go:build unix

package exec

import (
	"fmt"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc"
)

// Validate reports every problem with c as hostapi.FieldErrors.
func (c *Config) Validate() error {
	var errs hostapi.FieldErrors
	if c.Cmd == "" {
		errs.Add("cmd", `is required: set it to the program to run, for example "ghostunnel" or "/usr/sbin/nginx"`)
	}
	if c.Args != "" && len(c.Argv) > 0 {
		errs.Add("args", "and argv are mutually exclusive: keep args (one string, split like spiffe-helper's cmd_args) or argv (a list, used as is), not both")
	} else if _, err := proc.SplitArgs(c.Args); err != nil {
		errs.Add("args", fmt.Sprintf(`%v; wrap an argument holding spaces in double quotes and double any double quote inside it (""), or use argv = [...] instead`, err))
	}
	if c.Signal != "" {
		if _, err := proc.ParseSignal(c.Signal); err != nil {
			errs.Add("signal", err.Error())
		}
	}
	if d, err := time.ParseDuration(c.StopTimeout); err != nil || d <= 0 {
		errs.Add("stop_timeout", fmt.Sprintf(`%q is not a positive duration: use a Go duration such as "10s" or "1m30s"`, c.StopTimeout))
	}
	switch c.Restart {
	case "", RestartNever, RestartOnFailure, RestartAlways:
	default:
		errs.Add("restart", fmt.Sprintf(`%q is not a restart policy: use "never" (wait for the next rotation), "on-failure" or "always"`, c.Restart))
	}
	if c.RestartBackoff != "" {
		if d, err := time.ParseDuration(c.RestartBackoff); err != nil || d <= 0 {
			errs.Add("restart_backoff", fmt.Sprintf(`%q is not a positive duration: use a Go duration such as "1s" or "500ms"`, c.RestartBackoff))
		}
	}
	return errs.Err()
}

// argv returns the command's arguments; c is valid.
func (c *Config) argv() []string {
	if len(c.Argv) > 0 {
		return c.Argv
	}
	args, _ := proc.SplitArgs(c.Args)
	return args
}

// restartPolicy returns the restart policy; c is valid.
func (c *Config) restartPolicy() string {
	if c.Restart == "" {
		return RestartNever
	}
	return c.Restart
}

// restartBackoff returns the initial restart backoff; c is valid.
func (c *Config) restartBackoff() time.Duration {
	if c.RestartBackoff == "" {
		return DefaultRestartBackoff
	}
	d, _ := time.ParseDuration(c.RestartBackoff)
	return d
}
