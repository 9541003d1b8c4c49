package proc_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/proc"
	"github.com/svidagent/svidagent/internal/proc/proctest"
	"golang.org/x/sys/unix"
)

// TestNoDescendantOutlivesKilledAgent: the agent, SIGKILLed, leaves behind
// a command whose child called setsid and ignores SIGTERM. The reaper
// stops both: SIGTERM, then SIGKILL after its grace.
func TestNoDescendantOutlivesKilledAgent(t *testing.T) {
	ev := proctest.NewEvents(t)
	agent, err := proc.Start(proctest.Executable(t), nil, proc.Options{Env: append(ev.Env(proctest.ModeAgent), envAgentScript+"="+escapeScript)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { agent.Stop(time.Second) })
	// The command reports its child, and the setsid grandchild reports
	// its start: they race (CI saw the grandchild first).
	escapee := ev.Unordered(t, "child", "start")["start"]
	t.Cleanup(func() { syscall.Kill(escapee.Pid, syscall.SIGKILL) })
	if err := syscall.Kill(agent.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitExit(t, escapee.Pid, 20*time.Second) {
		t.Fatalf("the setsid grandchild %d ignoring SIGTERM outlived the SIGKILLed agent", escapee.Pid)
	}
}

// TestStopKillsEscapedDescendant: Stop reaches a descendant that left the
// command's process group and session and ignores SIGTERM, and returns
// only once it is gone.
func TestStopKillsEscapedDescendant(t *testing.T) {
	ev := proctest.NewEvents(t)
	p, err := proc.Start("/bin/sh", []string{"-c", escapeScript}, proc.Options{Env: ev.Env(proctest.ModeServe)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	escapee := ev.Next(t, "start")
	t.Cleanup(func() { syscall.Kill(escapee.Pid, syscall.SIGKILL) })
	if err := p.Stop(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "sent SIGKILL") {
		t.Fatalf("Stop = %v, want the SIGKILL escalation reported", err)
	}
	if !proctest.Reaped(escapee.Pid) {
		t.Fatalf("the setsid grandchild %d runs after Stop returned", escapee.Pid)
	}
}

// waitExit waits, on a pidfd (an event, not a poll), until pid has exited.
// It returns false if pid is still running after timeout.
func waitExit(t *testing.T, pid int, timeout time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n == 1
	}
}
