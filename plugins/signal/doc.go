// Package signal is the notifier.signal built-in: on each rotation it reads
// a pid from a file and sends that process a signal, like spiffe-helper's
// pid_file_name with renew_signal.
//
//	notifier "signal" {
//	  pid_file = "/run/nginx.pid"
//	  signal   = "SIGHUP"
//	}
//
// The file is read again at every rotation, so it may change as the
// process restarts. It must be a regular file of at most 64 bytes (it is
// opened non-blocking: a FIFO or /dev/zero fails at once), pid 1 is
// refused unless allow_pid_1 is set, and a failed signal is retried in the
// background with a jittered backoff until it is sent or the next rotation
// supersedes it. See README.md.
package signal
