package exec

import "time"

// Config configures the exec notifier (notifier.exec): it runs a command
// after the first successful write, signals it on each rotation, and
// relaunches it at the next rotation if it has exited; with Restart, it
// also restarts the command as soon as it exits, with a backoff.
type Config struct {
	// Cmd is the program to run. Required. spiffe-helper: cmd.
	Cmd string `hcl:"cmd" json:"cmd"`
	// Args is the argument string, split with spiffe-helper's rules:
	// spaces separate, double quotes group, "" inside quotes is a literal
	// quote, single quotes are not special. spiffe-helper: cmd_args.
	Args string `hcl:"args,optional" json:"args,omitempty"`
	// Argv is the argument vector, unsplit. Mutually exclusive with Args.
	Argv []string `hcl:"argv,optional" json:"argv,omitempty"`
	// Signal is sent to the running command's process on each rotation,
	// by name ("SIGUSR1" or "USR1"). Default: "" (a running command is left
	// alone; an exited one is still relaunched). spiffe-helper: renew_signal.
	Signal string `hcl:"signal,optional" json:"signal,omitempty"`
	// StopTimeout is how long the command and everything it spawned get
	// between SIGTERM and SIGKILL at shutdown. Default: "10s".
	StopTimeout string `hcl:"stop_timeout,optional" json:"stop_timeout"`
	// Restart says whether the command is restarted as soon as it exits:
	// "never" (it waits for the next rotation, as spiffe-helper does),
	// "on-failure" (after a non-zero exit status or death by a signal) or
	// "always" (after any exit). Default: "never" (also when empty).
	Restart string `hcl:"restart,optional" json:"restart,omitempty"`
	// RestartBackoff is the first delay before a restart; it doubles after
	// each quick exit up to MaxRestartBackoff (or RestartBackoff itself if
	// larger), and goes back to RestartBackoff once the command has run for
	// ten times RestartBackoff. Default: "1s" (also when empty).
	RestartBackoff string `hcl:"restart_backoff,optional" json:"restart_backoff,omitempty"`
}

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Restart backoff bounds: DefaultRestartBackoff is RestartBackoff's
// default, MaxRestartBackoff caps the doubling, and a command that ran for
// ResetAfterRuns times RestartBackoff is considered healthy again.
const (
	DefaultRestartBackoff = time.Second
	MaxRestartBackoff     = time.Minute
	ResetAfterRuns        = 10
)

// DefaultConfig returns a Config with its defaults set.
func DefaultConfig() *Config { return &Config{StopTimeout: "10s"} }
