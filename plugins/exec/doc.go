// Package exec is the notifier.exec built-in: it runs a command after the
// first successful write, signals it on each later rotation, relaunches it
// at the next rotation if it has exited, and stops its whole process group
// when the agent shuts down. It reproduces spiffe-helper's cmd, cmd_args
// and renew_signal.
//
//	notifier "exec" {
//	  cmd    = "ghostunnel"
//	  args   = "server --listen localhost:8002 --target localhost:8001"
//	  signal = "SIGUSR1"
//	}
//
// See README.md for the compatibility points and the deviations.
package exec
