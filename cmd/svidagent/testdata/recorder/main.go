// Command recorder is the consumer process of svidagent's integration
// tests. It appends one line per event to the file named by its first
// argument: "start <pid> <args...>" when it starts, "signal <name>" for each
// SIGUSR1 or SIGHUP, and "term" when SIGTERM ends it. With -ignore-term it
// ignores SIGTERM, so that only SIGKILL stops it; with -spawn it starts a
// grandchild (sleep) in its process group and records "child <pid>".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	spawn := flag.Bool("spawn", false, "start a grandchild")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: recorder [-ignore-term] [-spawn] FILE [ARGS...]")
		os.Exit(2)
	}
	f, err := os.OpenFile(flag.Arg(0), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	record := func(format string, args ...any) {
		fmt.Fprintf(f, format+"\n", args...)
		_ = f.Sync()
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGTERM)
	record("start %d %s", os.Getpid(), strings.Join(flag.Args()[1:], "|"))
	if *spawn {
		c := exec.Command("sleep", "3600")
		if err := c.Start(); err != nil {
			record("spawn-error %v", err)
		} else {
			record("child %d", c.Process.Pid)
		}
	}
	for s := range sigs {
		switch s {
		case syscall.SIGTERM:
			if *ignoreTerm {
				record("signal SIGTERM-ignored")
				continue
			}
			record("term")
			os.Exit(0)
		case syscall.SIGUSR1:
			record("signal SIGUSR1")
		case syscall.SIGHUP:
			record("signal SIGHUP")
		}
	}
}
