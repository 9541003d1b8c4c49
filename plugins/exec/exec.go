//go:build unix

package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc"
	"github.com/svidagent/svidagent/internal/registry"
)

func init() {
	registry.Register(registry.Module{
		ID:        "notifier.exec",
		NewConfig: func() any { return DefaultConfig() },
		New: func(cfg any, env registry.Env) (any, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("building notifier.exec: config is %T, want *exec.Config", cfg)
			}
			return New(c, env.Logger)
		},
	})
}

// ErrClosed is returned by Notify after Close.
var ErrClosed = errors.New("notifier.exec is closed")

// Notifier runs and signals one command. It is safe for concurrent use.
type Notifier struct {
	cmd         string
	args        []string
	sig         syscall.Signal // 0: leave a running command alone
	stopTimeout time.Duration
	opts        proc.Options
	log         *slog.Logger

	mu     sync.Mutex
	p      *proc.Process // nil until the first Notify
	runs   int           // how many times the command was started
	closed bool
}

var (
	_ hostapi.Notifier = (*Notifier)(nil)
	_ io.Closer        = (*Notifier)(nil)
)

// Option tunes New.
type Option func(*Notifier)

// WithOutput sends the command's standard output and error to stdout and
// stderr instead of the agent's own.
func WithOutput(stdout, stderr io.Writer) Option {
	return func(n *Notifier) { n.opts.Stdout, n.opts.Stderr = stdout, stderr }
}

// WithEnv sets the command's environment instead of the agent's.
func WithEnv(env []string) Option {
	return func(n *Notifier) { n.opts.Env = env }
}

// New validates cfg and returns its notifier; nothing runs until the first
// Notify. A nil logger discards.
func New(cfg *Config, logger *slog.Logger, opts ...Option) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cmd: cfg.Cmd, args: cfg.argv(), log: logger}
	if cfg.Signal != "" {
		n.sig, _ = proc.ParseSignal(cfg.Signal) // validated
	}
	n.stopTimeout, _ = time.ParseDuration(cfg.StopTimeout) // validated
	n.opts.Stdout, n.opts.Stderr = os.Stdout, os.Stderr
	for _, o := range opts {
		o(n)
	}
	return n, nil
}

// Notify starts the command on the first call. Later, it sends the
// configured signal to the command's process if it is running (nothing
// when no signal is set), and starts it again if it has exited.
func (n *Notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("notifying %q: %w", n.cmd, ErrClosed)
	}
	if n.p != nil && !n.p.Exited() {
		if n.sig == 0 {
			return nil
		}
		err := n.p.Signal(n.sig)
		if err == nil {
			n.log.LogAttrs(ctx, slog.LevelInfo, "signaled command", slog.String("cmd", n.cmd), slog.Int("pid", n.p.Pid()), slog.String("signal", proc.SignalName(n.sig)))
			return nil
		}
		if !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("notifying %q: %w", n.cmd, err)
		}
		// It exited meanwhile: start it again, below.
	}
	if n.p != nil {
		<-n.p.Done()
		n.log.LogAttrs(ctx, slog.LevelWarn, "command had exited; starting it again", slog.String("cmd", n.cmd), slog.Int("pid", n.p.Pid()), slog.String("exit", n.p.ProcessState().String()))
	}
	p, err := proc.Start(n.cmd, n.args, n.opts)
	if err != nil {
		return fmt.Errorf("notifying: %w; check cmd and that the program is on the agent's PATH", err)
	}
	n.p = p
	n.runs++
	n.log.LogAttrs(ctx, slog.LevelInfo, "started command", slog.String("cmd", n.cmd), slog.Int("pid", p.Pid()), slog.Int("run", n.runs))
	return nil
}

// Close stops the command's process group: SIGTERM, then SIGKILL after
// stop_timeout, and waits until the command has been reaped. It is
// idempotent, and does nothing if the command never started. Notify fails
// with ErrClosed afterwards.
func (n *Notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if n.p == nil {
		return nil
	}
	if err := n.p.Stop(n.stopTimeout); err != nil {
		return fmt.Errorf("closing %q: %w", n.cmd, err)
	}
	n.log.LogAttrs(context.Background(), slog.LevelInfo, "stopped command", slog.String("cmd", n.cmd), slog.Int("pid", n.p.Pid()))
	return nil
}

// Pid returns the pid of the command's current or last process, 0 before
// the first start. It is meant for tests and status pages.
func (n *Notifier) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p == nil {
		return 0
	}
	return n.p.Pid()
}
