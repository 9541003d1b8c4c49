package exec

// Config configures the exec notifier (notifier.exec): it runs a command
// after the first successful write, signals it on each rotation, and
// relaunches it at the next rotation if it has exited.
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
	// StopTimeout is how long the command's process group gets between
	// SIGTERM and SIGKILL at shutdown. Default: "10s".
	StopTimeout string `hcl:"stop_timeout,optional" json:"stop_timeout"`
}

// DefaultConfig returns a Config with its defaults set.
func DefaultConfig() *Config { return &Config{StopTimeout: "10s"} }
