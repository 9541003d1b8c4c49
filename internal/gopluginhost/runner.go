//go:build unix

package gopluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// procRunner is the go-plugin runner.Runner of a plugin process. It exists
// for three things go-plugin's own runner does not do: the process gets its
// own process group and (on Linux) SIGKILL when the agent dies, the fork
// happens on an OS thread that stays locked until the process has exited
// (Pdeathsig fires when the forking thread exits, golang/go#27505), and Kill
// kills the whole process group.
type procRunner struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser

	pid      int
	exited   chan struct{} // closed once the process has been waited for
	exitOnce sync.Once
	locked   sync.WaitGroup // the goroutine holding the forking thread
}

func newProcRunner(cmd *exec.Cmd) (*procRunner, error) {
	cmd.Stdin = nil // go-plugin sets the agent's stdin; the plugin gets /dev/null
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &procRunner{cmd: cmd, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

// Start forks on a goroutine locked to its OS thread; the goroutine keeps
// the thread until the process has been waited for.
func (r *procRunner) Start(context.Context) error {
	started := make(chan error, 1)
	r.locked.Add(1)
	go func() {
		defer r.locked.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := r.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		<-r.exited
	}()
	if err := <-started; err != nil {
		return err
	}
	r.pid = r.cmd.Process.Pid
	return nil
}

// Wait waits for the process; go-plugin calls it once, from its own
// goroutine, after a successful Start.
func (r *procRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.exitOnce.Do(func() { close(r.exited) })
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
	return nil
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
func (r *procRunner) Name() string          { return filepath.Base(r.cmd.Path) }
func (r *procRunner) ID() string            { return strconv.Itoa(r.pid) }

func (r *procRunner) Diagnose(context.Context) string {
	return "the plugin did not complete the go-plugin handshake: it may not be built with sdk/goplugin, be built for another OS or architecture, or have exited early; see its log lines above"
}

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
