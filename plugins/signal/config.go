package signal

// Config configures the signal notifier (notifier.signal): on each
// rotation it sends Signal to the pid read from PIDFile. The file is read
// again every time.
type Config struct {
	// PIDFile holds the pid to signal. It must be a regular file of at most
	// [MaxPIDFileSize] bytes. Required. spiffe-helper: pid_file_name.
	PIDFile string `hcl:"pid_file" json:"pid_file"`
	// Signal is the signal's name, "SIGHUP" or "HUP". Required.
	// spiffe-helper: renew_signal.
	Signal string `hcl:"signal" json:"signal"`
	// AllowPID1 lets the pid file name pid 1 (init, or the first process of
	// a container). Default: false (pid 1 is refused: a stale or hostile
	// pid file must not make the agent signal init).
	AllowPID1 bool `hcl:"allow_pid_1,optional" json:"allow_pid_1,omitempty"`
	// RetryBackoff is the first delay before the agent tries a failed
	// signal again (the pid file is not there yet, or names no process);
	// it doubles, jittered, up to [MaxRetryBackoff], until the signal is
	// sent or the next rotation supersedes it. Default: "1s" (also when
	// empty). In a native config it is the notifier block's core
	// retry_backoff, which every notifier takes.
	RetryBackoff string `hcl:"retry_backoff,optional" json:"retry_backoff,omitempty"`
}

// DefaultConfig returns a Config with its defaults set.
func DefaultConfig() *Config { return &Config{} }
