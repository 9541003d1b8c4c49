// Package proc holds the process helpers of the built-in notifiers: signal
// names, spiffe-helper's cmd_args splitting, and child processes that run in
// their own process group and, on Linux, under a reaper (the agent's own
// executable, a child subreaper watching a pipe from the agent) so that
// nothing they spawn outlives Stop, their exit, or the agent, even a
// SIGKILLed one. Its init turns a process started as that reaper into it,
// before main. See README.md. It is host machinery, not a public API.
//
//	sig, err := proc.ParseSignal("SIGUSR1") // or "usr1"
//	argv, err := proc.SplitArgs(`server --listen "localhost:8002"`)
//	p, err := proc.Start("ghostunnel", argv, proc.Options{})
//	...
//	err = p.Signal(sig)           // the direct child only, as spiffe-helper does
//	err = p.Stop(10 * time.Second) // SIGTERM to every descendant, SIGKILL after 10s, reap
package proc
