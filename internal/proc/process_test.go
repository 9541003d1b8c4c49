//go:build unix

package proc_test

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/proc"
	"github.com/svidagent/svidagent/internal/proc/proctest"
)

func TestMain(m *testing.M) {
	proctest.StartFunc = func(path string, args []string) (int, error) {
		opts := proc.Options{Env: append(os.Environ(), proctest.EnvMode+"="+proctest.ModeServe, proctest.EnvRole+"=grandchild")}
		if script := os.Getenv(envAgentScript); script != "" {
			path, args, opts = "/bin/sh", []string{"-c", script}, proc.Options{}
		}
		p, err := proc.Start(path, args, opts)
		if err != nil {
			return 0, err
		}
		return p.Pid(), nil
	}
	proctest.MaybeRunChild()
	os.Exit(m.Run())
}

// envAgentScript, in a ModeAgent child, makes it start /bin/sh -c with the
// variable's value instead of the test binary.
const envAgentScript = "PROC_TEST_AGENT_SCRIPT"

// escapeScript starts, in a new session, a shell that ignores SIGTERM,
// reports "start" with its pid on the events FIFO, and sleeps.
const escapeScript = `setsid /bin/sh -c 'trap "" TERM; echo "escapee start $$" > "$PROCTEST_FIFO"; exec sleep 1000' & wait`

// start runs the test binary as a child in mode.
func start(t *testing.T, ev *proctest.Events, mode string, args ...string) *proc.Process {
	t.Helper()
	p, err := proc.Start(proctest.Executable(t), args, proc.Options{Env: ev.Env(mode)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	return p
}

func TestStartSignalStop(t *testing.T) {
	ev := proctest.NewEvents(t)
	p := start(t, ev, proctest.ModeServe, "one arg", `"quoted"`)
	s := ev.Next(t, "start")
	if s.Pid != p.Pid() {
		t.Fatalf("child reported pid %d, Pid() = %d", s.Pid, p.Pid())
	}
	if s.Pgid() != p.Pid() {
		t.Fatalf("child's process group = %d, want its own (%d)", s.Pgid(), p.Pid())
	}
	if got, want := s.Args(), []string{"one arg", `"quoted"`}; !slices.Equal(got, want) {
		t.Fatalf("child's args = %q, want %q", got, want)
	}
	if own := syscall.Getpgrp(); s.Pgid() == own {
		t.Fatalf("child shares the test's process group %d", own)
	}

	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP} {
		if err := p.Signal(sig); err != nil {
			t.Fatalf("Signal(%v): %v", sig, err)
		}
		if got := ev.Next(t, "signal"); got.Extra != map[syscall.Signal]string{syscall.SIGUSR1: "SIGUSR1", syscall.SIGHUP: "SIGHUP"}[sig] {
			t.Fatalf("child got %q, want %v", got.Extra, sig)
		}
	}
	if p.Exited() || p.ProcessState() != nil {
		t.Fatal("Exited() before Stop")
	}

	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	ev.Next(t, "term")
	if !p.Exited() {
		t.Fatal("Exited() = false after Stop")
	}
	if !p.ProcessState().Success() {
		t.Fatalf("exit state %v, want success (the child exits 0 on SIGTERM)", p.ProcessState())
	}
	if !proctest.Reaped(p.Pid()) {
		t.Fatalf("pid %d still in the process table after Stop: not reaped", p.Pid())
	}
	if err := p.Signal(syscall.SIGUSR1); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
	// Idempotent.
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStdinIsNullAndOutputGoesToWriters(t *testing.T) {
	var out, errOut bytes.Buffer
	p, err := proc.Start("/bin/sh", []string{"-c", "cat; echo out; echo err >&2"}, proc.Options{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(proctest.Timeout):
		t.Fatal("sh did not exit: stdin is not closed")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Fatalf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}

func TestStartError(t *testing.T) {
	_, err := proc.Start("/nonexistent/cmd", nil, proc.Options{})
	if err == nil || !strings.Contains(err.Error(), `starting "/nonexistent/cmd"`) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Start = %v, want a wrapped not-exist error", err)
	}
}

func TestStopKillsGroup(t *testing.T) {
	tests := []struct {
		name           string
		mode           string
		grandchildMode string
		wantKill       bool
	}{
		{name: "term reaches grandchild", mode: proctest.ModeSpawn, grandchildMode: proctest.ModeServe},
		{name: "grandchild ignoring term is killed", mode: proctest.ModeSpawn, grandchildMode: proctest.ModeIgnoreTerm, wantKill: true},
		{name: "child ignoring term is killed", mode: proctest.ModeIgnoreTerm, wantKill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := proctest.NewEvents(t)
			env := append(ev.Env(tt.mode), proctest.EnvGrandchildMode+"="+tt.grandchildMode)
			p, err := proc.Start(proctest.Executable(t), nil, proc.Options{Env: env})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			n := 1
			if tt.mode == proctest.ModeSpawn {
				n = 2
			}
			starts := ev.Collect(t, "start", n)
			if gc, ok := starts["grandchild"]; n == 2 && (!ok || gc.Pgid() != p.Pid()) {
				t.Fatalf("grandchild start %+v: want it in group %d", gc, p.Pid())
			}
			if got := proctest.GroupMembers(t, p.Pid()); len(got) != n {
				t.Fatalf("group %d has %v, want %d processes", p.Pid(), got, n)
			}

			// Generous when SIGTERM suffices (race-instrumented children
			// take a while to exit), short when SIGKILL must follow.
			grace := 5 * time.Second
			if tt.wantKill {
				grace = 300 * time.Millisecond
			}
			begin := time.Now()
			err = p.Stop(grace)
			if tt.wantKill {
				if err == nil || !strings.Contains(err.Error(), "sent SIGKILL") {
					t.Fatalf("Stop = %v, want the SIGKILL escalation reported", err)
				}
				if time.Since(begin) < grace {
					t.Fatalf("Stop returned after %v, before the grace period", time.Since(begin))
				}
			} else if err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if !p.Exited() || !proctest.Reaped(p.Pid()) {
				t.Fatalf("child %d not reaped after Stop", p.Pid())
			}
			if got := proctest.GroupMembers(t, p.Pid()); len(got) != 0 {
				t.Fatalf("group %d still has %v after Stop", p.Pid(), got)
			}
		})
	}
}

// A child that exits leaves no descendant behind: the reaper stops them
// (SIGTERM, SIGKILL after a grace) before the Process is done. Elsewhere,
// Stop sweeps the group.
func TestExitedChildLeavesNoDescendant(t *testing.T) {
	ev := proctest.NewEvents(t)
	env := append(ev.Env(proctest.ModeSpawn), proctest.EnvGrandchildMode+"="+proctest.ModeServe)
	p, err := proc.Start(proctest.Executable(t), nil, proc.Options{Env: env})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	starts := ev.Collect(t, "start", 2)
	// Kill only the child; the grandchild lives on in the group.
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" {
		if term := ev.Next(t, "term"); term.Pid != starts["grandchild"].Pid {
			t.Fatalf("term from %+v, want from the grandchild %d", term, starts["grandchild"].Pid)
		}
		<-p.Done()
		if st := p.ProcessState(); st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("exit state %v, want the child's death by SIGKILL", st)
		}
	} else {
		<-p.Done()
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if runtime.GOOS != "linux" {
		ev.Next(t, "term")
	}
	if got := proctest.GroupMembers(t, p.Pid()); len(got) != 0 {
		t.Fatalf("group %d still has %v after Stop", p.Pid(), got)
	}
}

// Pdeathsig: when the agent is SIGKILLed, its child gets SIGTERM.
func TestChildGetsTermWhenAgentIsKilled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	ev := proctest.NewEvents(t)
	agent, err := proc.Start(proctest.Executable(t), nil, proc.Options{Env: ev.Env(proctest.ModeAgent)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { agent.Stop(time.Second) })
	// The agent reports its child and the child its start: they race.
	child := ev.Unordered(t, "child", "start")["child"]
	if err := syscall.Kill(agent.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	term := ev.Next(t, "term")
	if term.Extra != "" || term.Role != "grandchild" || child.Extra != itoa(term.Pid) {
		t.Fatalf("term from %+v, want from the agent's child %s", term, child.Extra)
	}
}

// Threads that the runtime ends (a goroutine exiting while locked to its
// thread) must not be the thread that forked the child, or Pdeathsig would
// fire while the agent lives.
func TestThreadExitsDoNotSignalChild(t *testing.T) {
	ev := proctest.NewEvents(t)
	p := start(t, ev, proctest.ModeIgnoreTerm)
	ev.Next(t, "start")
	// One after the other, so that idle threads, the forking one among
	// them if it were idle, are handed to the next goroutine and ended.
	for range 200 {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			close(done)
		}()
		<-done
	}
	// Two round trips: a SIGTERM sent before the first signal is reported
	// before the second one at the latest.
	for range 2 {
		if err := p.Signal(syscall.SIGUSR1); err != nil {
			t.Fatalf("Signal: %v", err)
		}
		if got := ev.Next(t, "signal"); got.Extra != "SIGUSR1" {
			t.Fatalf("child got %q", got.Extra)
		}
	}
	ev.None(t)
}

func TestStopHammer(t *testing.T) {
	ev := proctest.NewEvents(t)
	p := start(t, ev, proctest.ModeServe)
	ev.Next(t, "start")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- p.Stop(5 * time.Second)
		}()
		go func() {
			defer wg.Done()
			if err := p.Signal(syscall.SIGUSR2); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal %d: %v", i, err)
			}
			_ = p.Exited()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if !proctest.Reaped(p.Pid()) {
		t.Fatal("child not reaped")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
