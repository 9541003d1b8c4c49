//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/proc"
)

// forwarded are the signals `svidagent exec` passes on to its command.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// execGrace is how long the command may take to exit after the agent
// itself failed, before SIGKILL.
const execGrace = 10 * time.Second

// execCmd runs `svidagent exec [flags] -- CMD ARGS...`: the agent fetches
// and writes the credentials, then starts CMD under the reaper (nothing it
// spawns outlives it or the agent), keeps the credentials fresh while CMD
// runs (rotations write and notify as configured), forwards signals to
// CMD, and exits with CMD's exit code (128+N when signal N ended it), as
// spiffe-helper users asked (#249).
func execCmd(args []string, stderr io.Writer) int {
	i := slices.Index(args, "--")
	if i < 0 || i == len(args)-1 {
		fmt.Fprintf(stderr, "svidagent exec: want -- and the command to run, for example: svidagent exec -config agent.hcl -- /usr/bin/app --serve\n")
		return exitUsage
	}
	argv := args[i+1:]
	f, path, cfg, code := loadCommand("exec", args[:i], stderr, false)
	if code >= 0 {
		return code
	}
	if !f.levelSet && cfg.LogLevel != "" {
		f.logLevel = cfg.LogLevel
	}
	log, err := newLogger(f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent: %v\n", err)
		return exitUsage
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(stderr, "svidagent exec: %v\n", err)
		return exitRuntime
	}
	cfg.DaemonMode = true

	// Signals are taken from here on: before CMD runs they stop the agent,
	// afterwards they go to CMD.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	delivered := make(chan struct{}, 1)
	a := agent.New(cfg, agent.WithLogger(log), agent.WithVersion(strings.TrimPrefix(versionString(), "svidagent ")),
		agent.WithConfigPath(path), agent.WithOnDelivery(func(string) {
			select {
			case delivered <- struct{}{}:
			default:
			}
		}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	stopAgent := func() {
		cancel()
		if err := <-runErr; err != nil {
			log.Error("agent failed", "error", err)
		}
	}

	// Every svid block delivered: the command finds its files in place.
	for ready := false; !ready; {
		select {
		case <-delivered:
			ready = a.Status().Ready
		case err := <-runErr:
			if err == nil {
				err = fmt.Errorf("the agent stopped before the credentials were delivered")
			}
			log.Error("agent failed", "error", err)
			return exitRuntime
		case s := <-sigs:
			log.Info("signal before the command started; stopping", "signal", s.String())
			stopAgent()
			return 128 + int(s.(syscall.Signal))
		}
	}

	p, err := proc.Start(bin, argv[1:], proc.Options{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		log.Error("starting the command failed", "error", err)
		stopAgent()
		return exitRuntime
	}
	log.Info("command started", "component", "exec", "cmd", bin, "pid", p.Pid())
	for {
		select {
		case s := <-sigs:
			if err := p.Signal(s.(syscall.Signal)); err != nil {
				log.Debug("forwarding a signal failed", "signal", s.String(), "error", err)
			}
		case <-p.Done():
			code := exitCode(p.ProcessState())
			log.Info("command exited; stopping", "component", "exec", "exit_code", code)
			stopAgent()
			return code
		case err := <-runErr:
			log.Error("agent failed; stopping the command", "error", err)
			_ = p.Stop(execGrace)
			return exitRuntime
		}
	}
}

// exitCode is st's exit status as a shell reports it: 128+N when signal
// N ended the process.
func exitCode(st *os.ProcessState) int {
	if st == nil {
		return exitRuntime
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
