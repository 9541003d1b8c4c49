package signal

// Config configures the signal notifier (notifier.signal): on each
// rotation it sends Signal to the pid read from PIDFile. The file is read
// again every time.
type Config struct {
	// PIDFile holds the pid to signal. Required. spiffe-helper: pid_file_name.
	PIDFile string `hcl:"pid_file" json:"pid_file"`
	// Signal is the signal's name, "SIGHUP" or "HUP". Required.
	// spiffe-helper: renew_signal.
	Signal string `hcl:"signal" json:"signal"`
}

// DefaultConfig returns a Config with its defaults set.
func DefaultConfig() *Config { return &Config{} }
