//go:build unix

package subproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"github.com/svidagent/svidagent/internal/proc"
)

// procRunner is the go-plugin runner.Runner of a plugin process. It exists
// for what go-plugin's own runner does not do: the process gets its own
// process group, (on Linux) SIGKILL when the agent dies and its own pid
// namespace, so that nothing it spawned outlives it; the fork happens on an
// OS thread that stays locked until the process has exited (Pdeathsig
// fires when the forking thread exits, golang/go#27505); and Kill kills the
// whole process group.
type procRunner struct {
	cmd     *exec.Cmd // go-plugin's; the one started is a copy
	isolate bool      // try a pid namespace first
	// onNoNamespace is called when the pid namespace was refused and the
	// plugin started without one.
	onNoNamespace func(err error)

	run    *exec.Cmd     // the command started in a pid namespace
	reaped *proc.Process // or the command started under the reaper
	stdout *os.File      // read ends of the plugin's stdout and stderr
	stderr *os.File

	pid      int
	exited   chan struct{} // closed once the process has been waited for
	exitOnce sync.Once
	locked   sync.WaitGroup // the goroutine holding the forking thread
}

func newProcRunner(cmd *exec.Cmd, isolate bool, onNoNamespace func(error)) *procRunner {
	return &procRunner{cmd: cmd, isolate: isolate && canIsolate, onNoNamespace: onNoNamespace, exited: make(chan struct{})}
}

// Start starts the plugin in a pid namespace where it can, and without one
// where the kernel refuses it (then onNoNamespace is told).
func (r *procRunner) Start(context.Context) error {
	if !r.isolate {
		return r.start(false)
	}
	err := r.start(true)
	if err == nil || !namespaceDenied(err) {
		return err
	}
	if err2 := r.start(false); err2 != nil {
		return err2
	}
	r.onNoNamespace(err)
	return nil
}

// start forks on a goroutine locked to its OS thread; the goroutine keeps
// the thread until the process has been waited for.
func (r *procRunner) start(isolate bool) error {
	if !isolate {
		return r.startReaped()
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd := &exec.Cmd{Path: r.cmd.Path, Args: r.cmd.Args, Env: r.cmd.Env, Dir: r.cmd.Dir}
	cmd.Stdin = nil // go-plugin sets the agent's stdin; the plugin gets /dev/null
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = sysProcAttr(isolate)
	started := make(chan error, 1)
	r.locked.Add(1)
	go func() {
		defer r.locked.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		<-r.exited
	}()
	err = <-started
	outW.Close() // the child has its copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	r.run, r.stdout, r.stderr, r.pid = cmd, outR, errR, cmd.Process.Pid
	return nil
}

// startReaped starts the plugin without a pid namespace, under the
// reaper of internal/proc on Linux (the agent's own executable as a child
// subreaper that watches a pipe only the agent holds): every process the
// plugin spawns, in whatever session, is re-parented to it, and it stops
// all of them when the plugin exits or is killed and when the agent dies,
// SIGKILL included. It is what the pid namespace does where the kernel
// grants one. Elsewhere the plugin runs in its own process group.
func (r *procRunner) startReaped() error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	env := r.cmd.Env
	if env == nil {
		env = []string{} // nil would give the plugin the agent's environment
	}
	p, err := proc.Start(r.cmd.Path, r.cmd.Args[1:], proc.Options{Stdout: outW, Stderr: errW, Env: env, Dir: r.cmd.Dir})
	outW.Close() // the reaper and the plugin have their copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	r.reaped, r.stdout, r.stderr, r.pid = p, outR, errR, p.Pid()
	return nil
}

// Wait waits for the process; go-plugin calls it once, from its own
// goroutine, after a successful Start.
func (r *procRunner) Wait(context.Context) error {
	var err error
	if r.reaped != nil {
		err = r.reaped.Err()
	} else {
		err = r.run.Wait()
	}
	r.exitOnce.Do(func() { close(r.exited) })
	// As exec.Cmd.StdoutPipe does: a descendant that kept the pipes open
	// (possible only without a pid namespace) cannot hold go-plugin's
	// readers.
	r.stdout.Close()
	r.stderr.Close()
	return err
}

// Kill sends SIGKILL to the process group. The group id is the process's
// pid; the kernel does not reuse it while any member of the group lives.
func (r *procRunner) Kill(context.Context) error {
	if r.pid == 0 {
		return nil
	}
	err := syscall.Kill(-r.pid, syscall.SIGKILL)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing process group %d: %w", r.pid, err)
	}
	if r.reaped != nil {
		// And whatever left the group: the reaper SIGKILLs it at once.
		_ = r.reaped.Stop(0)
	}
	return nil
}

// endedNote says how the process ended, for a start that failed, unless
// it was by Kill (SIGKILL) or it was never started or waited for.
func (r *procRunner) endedNote() string {
	if r == nil || r.run == nil && r.reaped == nil || !r.Exited() {
		return ""
	}
	var st *os.ProcessState
	if r.reaped != nil {
		st = r.reaped.ProcessState()
	} else {
		st = r.run.ProcessState
	}
	if st == nil {
		return ""
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return ""
	}
	return fmt.Sprintf("; the plugin process ended by itself (%s)", st)
}

// Exited reports whether the process has exited and been reaped.
func (r *procRunner) Exited() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }

func (r *procRunner) Name() string { return filepath.Base(r.cmd.Path) }
func (r *procRunner) ID() string   { return strconv.Itoa(r.pid) }

func (r *procRunner) Diagnose(context.Context) string {
	return "the plugin did not complete the go-plugin handshake: it may not be built with sdk/goplugin, be built for another OS or architecture, or have exited early; see its log lines above"
}

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
