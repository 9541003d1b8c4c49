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
// process restarts. See README.md.
package signal
