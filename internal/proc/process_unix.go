//go:build unix

package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options tune Start.
type Options struct {
	// Stdin is the command's standard input. Default: nil (/dev/null).
	// notifier.exec passes the agent's os.Stdin, as spiffe-helper does.
	Stdin io.Reader
	// Stdout receives the command's standard output. Default: os.Stdout
	// (the agent's, as spiffe-helper does).
	Stdout io.Writer
	// Stderr receives the command's standard error. Default: os.Stderr.
	Stderr io.Writer
	// Env is the command's environment. Default: nil (the agent's).
	Env []string
	// Dir is the command's working directory. Default: "" (the agent's).
	Dir string
}

// waitDelay bounds how long the reaper waits, after the command exited,
// for descendants that inherited a pipe to Stdout or Stderr to close it.
// It matters only when Stdout or Stderr is not an *os.File.
const waitDelay = 2 * time.Second

// groupGonePoll is how often Stop looks whether the process group has
// emptied; the kernel has no event for that.
const groupGonePoll = 10 * time.Millisecond

// Process is a command running in its own process group. Its reaper
// goroutine, owned by the Process, waits for the command and exits with
// it; Stop waits for the reaper.
type Process struct {
	cmd *exec.Cmd // the reaper, or the command where there is none
	pid int       // the command's
	// With a reaper: ctl is the write end of its control pipe, report
	// the read end of its report pipe.
	ctl     *os.File
	report  *bufio.Reader
	repFile *os.File
	read    chan struct{} // closed once Start has read the report's first line
	repMu   sync.Mutex    // one reader of report at a time
	killed  bool          // the reaper reported SIGKILL; under repMu, final after done
	done    chan struct{} // closed once the command has been waited for
	err     error         // the command's exit status; valid after done

	stopOnce sync.Once
	stopErr  error
}

// Start runs path with args in a new process group whose id is the
// command's pid. The command's stdin is opts.Stdin. On Linux the command
// runs under a reaper (see the package README): nothing it spawns outlives
// Stop, its own exit, or the agent, even if the agent is SIGKILLed.
// Elsewhere it runs as the agent's child. Start returns once the command
// has started, or with the reason it could not.
func Start(path string, args []string, opts Options) (*Process, error) {
	cmd := exec.Command(path, args...)
	if cmd.Err != nil {
		return nil, fmt.Errorf("starting %q: %w", path, cmd.Err)
	}
	if useReaper {
		return startReaped(cmd, path, args, opts)
	}
	cmd.Stdin = opts.Stdin // nil: exec opens os.DevNull
	cmd.Stdout = opts.Stdout
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	cmd.Stderr = opts.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.Env = opts.Env
	cmd.Dir = opts.Dir
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = sysProcAttr()

	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %q: %w", path, err)
	}
	p.pid = cmd.Process.Pid
	return p, nil
}

// run starts the command (or its reaper) and reaps it. The goroutine stays
// locked to its OS thread while the command runs: Pdeathsig (without a
// reaper) fires when the thread that forked the child exits, and a locked
// thread is never handed to another goroutine that could make the runtime
// end it (golang/go#27505).
func (p *Process) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := p.cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	p.err = p.cmd.Wait()
	if p.ctl != nil { // the reaper exited: its report is complete
		<-p.read
		p.repMu.Lock()
		rest, _ := io.ReadAll(p.report)
		p.killed = p.killed || strings.Contains(string(rest), "killed")
		p.ctl.Close()
		p.repFile.Close()
		p.repMu.Unlock()
	}
	close(p.done)
}

// Pid returns the command's pid, which is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the command has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the command has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the command exited (nil for status 0, an
// *exec.ExitError otherwise). It is valid once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// ProcessState returns the command's exit state, or nil while it runs.
func (p *Process) ProcessState() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig to the command's process only, not to its group, as
// spiffe-helper does on renewal. It returns an error wrapping
// os.ErrProcessDone if the command has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("signaling pid %d: %w", p.pid, os.ErrProcessDone)
	}
	if p.ctl != nil {
		return p.signalReaped(sig)
	}
	// os.Process signals through a pidfd where the kernel has them, so a
	// reaped and reused pid is never signaled.
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signaling pid %d with %s: %w", p.pid, SignalName(sig), err)
	}
	return nil
}

// Stop stops the command and what it spawned: on Linux, through the
// reaper, SIGTERM to every descendant (in any group or session), up to
// grace for all to exit, then SIGKILL to whatever is left, and it waits
// until all have been reaped; elsewhere the same for the command's
// process group, whose remaining members it also sweeps up when the
// command itself had already exited. Stop is idempotent and safe to call concurrently; every
// call returns the first call's result: nil when SIGTERM sufficed, an error
// saying so when SIGKILL was needed or a signal could not be sent.
func (p *Process) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(grace) })
	return p.stopErr
}

func (p *Process) stop(grace time.Duration) error {
	if p.ctl != nil {
		return p.stopReaped(grace)
	}
	pgid := p.pid
	if !p.Exited() || groupAlive(pgid) {
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stopping process group %d: sending SIGTERM: %w", pgid, err)
		}
	}
	deadline := time.Now().Add(grace)
	if p.waitDone(deadline) && p.waitGroupGone(deadline) {
		return nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		<-p.done
		return fmt.Errorf("stopping process group %d: sending SIGKILL: %w", pgid, err)
	}
	<-p.done
	// SIGKILL cannot be caught; the remaining members are reaped by their
	// parents or by init, which takes a moment.
	p.waitGroupGone(time.Now().Add(grace))
	return fmt.Errorf("stopping process group %d: still running %v after SIGTERM; sent SIGKILL", pgid, grace)
}

// startReaped starts cmd's command under a reaper: the agent's own
// executable, which starts the command, forwards signals to it and stops
// everything it spawned.
func startReaped(cmd *exec.Cmd, path string, args []string, opts Options) (*Process, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting %q: %w", path, err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("starting %q: %w", path, err)
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	r := exec.Command("/proc/self/exe")
	r.Args = append([]string{reaperArg0, cmd.Path, path}, args...)
	r.Env = append(env[:len(env):len(env)], envReaper+"=1")
	r.Dir = opts.Dir
	r.Stdin = opts.Stdin
	r.Stdout, r.Stderr = opts.Stdout, opts.Stderr
	if r.Stdout == nil {
		r.Stdout = os.Stdout
	}
	if r.Stderr == nil {
		r.Stderr = os.Stderr
	}
	r.ExtraFiles = []*os.File{ctlR, repW}
	r.WaitDelay = waitDelay
	r.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	p := &Process{cmd: r, done: make(chan struct{}), ctl: ctlW, report: bufio.NewReader(repR), repFile: repR, read: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(started)
	err = <-started
	ctlR.Close() // the reaper has its copies
	repW.Close()
	if err != nil {
		ctlW.Close()
		repR.Close()
		return nil, fmt.Errorf("starting %q: %w", path, err)
	}
	// Read before the reaper can exit: run reads the rest.
	line, err := p.report.ReadString('\n')
	close(p.read)
	if pid, ok := strings.CutPrefix(strings.TrimSpace(line), "pid "); ok && err == nil {
		if p.pid, err = strconv.Atoi(pid); err == nil {
			return p, nil
		}
	}
	ctlW.Close() // the reaper stops
	<-p.done
	var errno int
	var msg string
	if _, err := fmt.Sscanf(line, "error %d", &errno); err == nil {
		msg = strings.TrimSpace(strings.TrimPrefix(line, fmt.Sprintf("error %d", errno)))
		if errno > 0 {
			return nil, fmt.Errorf("starting %q: %w", path, syscall.Errno(errno))
		}
		return nil, fmt.Errorf("starting %q: %s", path, msg)
	}
	return nil, fmt.Errorf("starting %q: the reaper exited (%v) before the command started", path, p.err)
}

// signalReaped asks the reaper to signal the command and waits for its
// answer, so that a command the reaper has reaped is never signaled and
// reports os.ErrProcessDone at once.
func (p *Process) signalReaped(sig syscall.Signal) error {
	p.repMu.Lock()
	defer p.repMu.Unlock()
	done := fmt.Errorf("signaling pid %d: %w", p.pid, os.ErrProcessDone)
	if _, err := fmt.Fprintf(p.ctl, "signal %d\n", int(sig)); err != nil {
		return done // stopped, or the reaper exited
	}
	line, err := p.report.ReadString('\n')
	line = strings.TrimSpace(line)
	var errno int
	switch {
	case err == nil && line == "ok":
		return nil
	case line == "killed": // the reaper stopped instead of answering
		p.killed = true
		return done
	case err == nil && line != "gone":
		if _, err := fmt.Sscanf(line, "error %d", &errno); err == nil {
			return fmt.Errorf("signaling pid %d with %s: %w", p.pid, SignalName(sig), syscall.Errno(errno))
		}
	}
	return done
}

// stopReaped tells the reaper to stop the command and its descendants
// with grace, and waits for it. If the reaper itself is stuck past grace
// and reaperMargin, it is SIGKILLed.
func (p *Process) stopReaped(grace time.Duration) error {
	fmt.Fprintf(p.ctl, "stop %d\n", grace.Nanoseconds()) // EPIPE once it exited
	p.ctl.Close()
	if !p.waitDone(time.Now().Add(grace + reaperMargin)) {
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("stopping pid %d: its reaper did not finish within %v; sent it SIGKILL", p.pid, grace+reaperMargin)
	}
	p.repMu.Lock()
	killed := p.killed
	p.repMu.Unlock()
	if killed {
		return fmt.Errorf("stopping pid %d: it or its descendants still ran %v after SIGTERM; sent SIGKILL", p.pid, grace)
	}
	return nil
}

// waitDone waits until the command is reaped or deadline passes, and
// reports whether it was reaped.
func (p *Process) waitDone(deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// waitGroupGone polls until no process is left in the group (zombies
// count as gone) or deadline passes, and reports whether the group emptied.
// The caller has reaped the leader, so no event is left to wait on.
func (p *Process) waitGroupGone(deadline time.Time) bool {
	for {
		if !groupAlive(p.pid) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(groupGonePoll)
	}
}

// groupAlive reports whether the process group pgid has a member that is
// not a zombie.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return groupHasLiveMember(pgid)
}
