// Package exec is the notifier.exec built-in: it runs a command after the
// first successful write, signals it on each later rotation, relaunches it
// at the next rotation if it has exited, and stops it and everything it
// spawned when the agent shuts down or dies (on Linux, through a reaper:
// see internal/proc). It reproduces spiffe-helper's cmd, cmd_args
// and renew_signal. With restart = "on-failure" or "always" it is also a
// supervisor that restarts the command, with a doubling backoff, as soon as
// it exits.
//
//	notifier "exec" {
//	  cmd    = "ghostunnel"
//	  args   = "server --listen localhost:8002 --target localhost:8001"
//	  signal = "SIGUSR1"
//	  restart = "on-failure" // optional; default "never"
//	}
//
// See README.md for the compatibility points and the deviations.
package exec
