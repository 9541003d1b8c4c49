//go:build unix

package proctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Modes of the child.
const (
	// ModeServe reports "start", reports each SIGUSR1, SIGUSR2 and SIGHUP
	// as "signal", and exits 0 on SIGTERM after reporting "term".
	ModeServe = "serve"
	// ModeIgnoreTerm is ModeServe but reports "term-ignored" on SIGTERM
	// and keeps running, so only SIGKILL stops it.
	ModeIgnoreTerm = "ignore-term"
	// ModeSpawn starts a grandchild in the child's process group (mode from
	// EnvGrandchildMode, default ModeServe), then serves like ModeServe.
	ModeSpawn = "spawn"
	// ModeExit reports "start" and exits with status 3.
	ModeExit = "exit"
	// ModeAgent plays the agent: it starts a ModeServe child with
	// StartFunc, reports "child" with the child's pid, and waits to be
	// killed.
	ModeAgent = "agent"
)

// Environment of a child.
const (
	EnvMode           = "PROCTEST_MODE"
	EnvFIFO           = "PROCTEST_FIFO"
	EnvRole           = "PROCTEST_ROLE"
	EnvGrandchildMode = "PROCTEST_GRANDCHILD_MODE"
)

// Timeout bounds every wait for an event.
const Timeout = 10 * time.Second

// StartFunc starts a child in ModeAgent; the proc tests set it to a
// function that calls proc.Start, so that this package does not import
// the one it tests.
var StartFunc func(path string, args []string) (pid int, err error)

// MaybeRunChild runs the child and exits if the process was started as
// one; otherwise it returns at once.
func MaybeRunChild() {
	mode := os.Getenv(EnvMode)
	if mode == "" {
		return
	}
	os.Exit(runChild(mode))
}

func runChild(mode string) int {
	fifo, err := os.OpenFile(os.Getenv(EnvFIFO), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proctest child:", err)
		return 2
	}
	role := os.Getenv(EnvRole)
	if role == "" {
		role = "child"
	}
	report := func(event, extra string) {
		// One write per line; lines are shorter than PIPE_BUF, so atomic.
		fmt.Fprintf(fifo, "%s %s %d %s\n", role, event, os.Getpid(), extra)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGTERM)

	switch mode {
	case ModeExit:
		report("start", startExtra())
		return 3
	case ModeSpawn:
		gc := exec.Command(os.Args[0], os.Args[1:]...)
		gm := os.Getenv(EnvGrandchildMode)
		if gm == "" {
			gm = ModeServe
		}
		gc.Env = append(os.Environ(), EnvMode+"="+gm, EnvRole+"=grandchild")
		if err := gc.Start(); err != nil {
			report("error", err.Error())
			return 2
		}
		// Not waited for on purpose: it must outlive a careless parent.
	case ModeAgent:
		pid, err := StartFunc(os.Args[0], nil)
		if err != nil {
			report("error", err.Error())
			return 2
		}
		report("child", strconv.Itoa(pid))
		select {} // until killed
	}
	report("start", startExtra())
	for s := range sigs {
		sig := s.(syscall.Signal)
		if sig == syscall.SIGTERM {
			if mode == ModeIgnoreTerm {
				report("term-ignored", "")
				continue
			}
			report("term", "")
			return 0
		}
		report("signal", strings.ToUpper(sigName(sig)))
	}
	return 0
}

func startExtra() string {
	b, _ := json.Marshal(os.Args[1:])
	return fmt.Sprintf("pgid=%d args=%s", syscall.Getpgrp(), b)
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// Event is one line a child reported.
type Event struct {
	Role  string // "child" or "grandchild"
	Name  string // "start", "signal", "term", "term-ignored", "child", "error"
	Pid   int
	Extra string // for "signal" the signal's name; for "start" pgid and args
}

// Args returns the argument vector a "start" event reported.
func (e Event) Args() []string {
	_, js, _ := strings.Cut(e.Extra, "args=")
	var args []string
	_ = json.Unmarshal([]byte(js), &args)
	return args
}

// Pgid returns the process group a "start" event reported.
func (e Event) Pgid() int {
	f, _, _ := strings.Cut(e.Extra, " ")
	n, _ := strconv.Atoi(strings.TrimPrefix(f, "pgid="))
	return n
}

// Events reads what children report on a FIFO.
type Events struct {
	// Path is the FIFO; children find it in EnvFIFO.
	Path string
	c    chan Event
}

// NewEvents makes a FIFO in a temporary directory and reads it until the
// test ends.
func NewEvents(t testing.TB) *Events {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("making fifo: %v", err)
	}
	// O_RDWR: opening does not wait for a writer, and the reader never
	// sees EOF when the children exit.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("opening fifo: %v", err)
	}
	e := &Events{Path: path, c: make(chan Event, 64)}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 4)
			if len(f) < 3 {
				continue
			}
			pid, _ := strconv.Atoi(f[2])
			ev := Event{Role: f[0], Name: f[1], Pid: pid}
			if len(f) == 4 {
				ev.Extra = f[3]
			}
			select {
			case e.c <- ev:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		f.Close() // unblocks the reader
		<-done
	})
	return e
}

// Env returns the environment a child in mode needs.
func (e *Events) Env(mode string) []string {
	return append(os.Environ(), EnvMode+"="+mode, EnvFIFO+"="+e.Path)
}

// Next waits up to Timeout for the next event and fails the test unless
// it is named name.
func (e *Events) Next(t testing.TB, name string) Event {
	t.Helper()
	select {
	case ev := <-e.c:
		if ev.Name != name {
			t.Fatalf("child event: got %+v, want %q", ev, name)
		}
		return ev
	case <-time.After(Timeout):
		t.Fatalf("child event: no %q within %v", name, Timeout)
	}
	return Event{}
}

// Unordered waits for one event of each name, in any order (a process and
// the one it starts race to report), and returns them by name.
func (e *Events) Unordered(t testing.TB, names ...string) map[string]Event {
	t.Helper()
	got := map[string]Event{}
	for range names {
		select {
		case ev := <-e.c:
			if !slices.Contains(names, ev.Name) || got[ev.Name].Name != "" {
				t.Fatalf("child event: got %+v, want one of each of %q", ev, names)
			}
			got[ev.Name] = ev
		case <-time.After(Timeout):
			t.Fatalf("child event: got %v within %v, want one of each of %q", got, Timeout, names)
		}
	}
	return got
}

// Collect waits for n events named name, in any order with respect to
// each other (a child and its grandchild race), and returns them by role.
func (e *Events) Collect(t testing.TB, name string, n int) map[string]Event {
	t.Helper()
	got := map[string]Event{}
	for range n {
		ev := e.Next(t, name)
		got[ev.Role] = ev
	}
	return got
}

// None fails the test if an event is pending. Call it after an event
// that a child reports after every earlier one.
func (e *Events) None(t testing.TB) {
	t.Helper()
	select {
	case ev := <-e.c:
		t.Fatalf("child event: unexpected %+v", ev)
	default:
	}
}

// Executable returns the test binary's path.
func Executable(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding test binary: %v", err)
	}
	return exe
}

// GroupMembers returns the pids of the processes in group pgid that are
// not zombies, from /proc.
func GroupMembers(t testing.TB, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		t.Fatalf("listing /proc: %v (%d entries)", err, len(stats))
	}
	var pids []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			pids = append(pids, pid)
		}
	}
	return pids
}

// Reaped reports whether pid no longer exists, not even as a zombie.
func Reaped(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// Eventually polls cond every 10ms until it holds or Timeout passes; use
// it only where no event exists (a process leaving the process table).
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, Timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
