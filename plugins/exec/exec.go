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
	registry.RegisterNotifier("exec", DefaultConfig, func(c *Config, env registry.Env) (hostapi.Notifier, error) {
		return New(c, env.Logger)
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

	restart string        // RestartNever, RestartOnFailure or RestartAlways
	backoff time.Duration // the first restart delay

	mu        sync.Mutex
	p         *proc.Process // nil until the first Notify
	startedAt time.Time     // when p (or the last failed attempt) started
	runs      int           // how many times the command was started
	closed    bool
	// The supervisor (restart != never) starts with the first run and is
	// stopped by Close, which waits for it.
	supervising bool
	changed     chan struct{} // buffered 1: Notify started the command
	stop        chan struct{} // closed by Close
	wg          sync.WaitGroup
	closeDone   chan struct{} // closed when the first Close has finished
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

// WithStdin gives the command r as its standard input instead of the
// agent's.
func WithStdin(r io.Reader) Option {
	return func(n *Notifier) { n.opts.Stdin = r }
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
	n := &Notifier{
		cmd: cfg.Cmd, args: cfg.argv(), log: logger,
		restart: cfg.restartPolicy(), backoff: cfg.restartBackoff(),
		changed: make(chan struct{}, 1), stop: make(chan struct{}), closeDone: make(chan struct{}),
	}
	if cfg.Signal != "" {
		n.sig, _ = proc.ParseSignal(cfg.Signal) // validated
	}
	n.stopTimeout, _ = time.ParseDuration(cfg.StopTimeout) // validated
	n.opts.Stdin, n.opts.Stdout, n.opts.Stderr = os.Stdin, os.Stdout, os.Stderr
	for _, o := range opts {
		o(n)
	}
	return n, nil
}

// Notify starts the command on the first call. Later, it sends the
// configured signal to the command's process if it is running (nothing
// when no signal is set), and starts it again if it has exited. With a
// restart policy, the first start also starts the supervisor, and a start
// during a restart backoff takes the place of the pending restart.
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
	if err := n.startLocked(ctx); err != nil {
		return fmt.Errorf("notifying: %w", err)
	}
	// A supervisor waiting out a backoff watches the new run instead.
	select {
	case n.changed <- struct{}{}:
	default:
	}
	if n.restart != RestartNever && !n.supervising {
		n.supervising = true
		n.wg.Add(1)
		go n.supervise()
	}
	return nil
}

// startLocked starts the command; n.mu is held.
func (n *Notifier) startLocked(ctx context.Context) error {
	n.startedAt = time.Now()
	p, err := proc.Start(n.cmd, n.args, n.opts)
	if err != nil {
		return fmt.Errorf("%w; check cmd and that the program is on the agent's PATH", err)
	}
	n.p = p
	n.runs++
	n.log.LogAttrs(ctx, slog.LevelInfo, "started command", slog.String("cmd", n.cmd), slog.Int("pid", p.Pid()), slog.Int("run", n.runs))
	return nil
}

// supervise restarts the command when it exits, as the restart policy
// says, after a backoff. It runs from the first start until Close.
func (n *Notifier) supervise() {
	defer n.wg.Done()
	ctx := context.Background()
	b := backoff{initial: n.backoff, max: max(n.backoff, MaxRestartBackoff)}
	for {
		n.mu.Lock()
		p, startedAt := n.p, n.startedAt
		select { // a change before this read is seen by the read
		case <-n.changed:
		default:
		}
		n.mu.Unlock()

		select {
		case <-p.Done():
		case <-n.stop:
			return
		}
		attrs := []slog.Attr{slog.String("cmd", n.cmd), slog.Int("pid", p.Pid()), slog.String("exit", p.ProcessState().String())}
		if !restarts(n.restart, p.ProcessState()) {
			n.log.LogAttrs(ctx, slog.LevelInfo, "command exited; not restarting it until the next rotation", append(attrs, slog.String("restart", n.restart))...)
			select {
			case <-n.changed:
				continue
			case <-n.stop:
				return
			}
		}
		delay := b.next(time.Since(startedAt))
		n.log.LogAttrs(ctx, slog.LevelWarn, "command exited; restarting it", append(attrs, slog.String("restart", n.restart), slog.Duration("delay", delay))...)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-n.changed: // a rotation started it first
			t.Stop()
			continue
		case <-n.stop:
			t.Stop()
			return
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return
		}
		if n.p == p {
			if err := n.startLocked(ctx); err != nil {
				n.log.LogAttrs(ctx, slog.LevelError, "restarting command", slog.String("cmd", n.cmd), slog.String("error", err.Error()))
			}
		}
		n.mu.Unlock()
	}
}

// restarts reports whether policy restarts a command that exited with st.
func restarts(policy string, st *os.ProcessState) bool {
	switch policy {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return !st.Success()
	}
	return false
}

// backoff is the restart delay: it doubles after each quick exit, up to
// max, and starts over after a run of ResetAfterRuns × initial.
type backoff struct {
	initial, max time.Duration
	cur          time.Duration // 0: none yet
}

// next returns the delay before restarting a command that ran for ran.
func (b *backoff) next(ran time.Duration) time.Duration {
	switch {
	case b.cur == 0 || ran >= ResetAfterRuns*b.initial:
		b.cur = b.initial
	default:
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

// Close stops the command and everything it spawned: SIGTERM, then
// SIGKILL after stop_timeout, and waits until all have been reaped (see
// proc.Process.Stop). It first
// stops the restart supervisor, so nothing restarts the command during or
// after Close. It is idempotent (a concurrent call waits for the first),
// and does nothing if the command never started. Notify fails with
// ErrClosed afterwards.
func (n *Notifier) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		<-n.closeDone
		return nil
	}
	n.closed = true
	close(n.stop)
	p := n.p // final: nothing starts the command once closed is set
	n.mu.Unlock()
	defer close(n.closeDone)
	n.wg.Wait() // the supervisor, out of any backoff
	if p == nil {
		return nil
	}
	if err := p.Stop(n.stopTimeout); err != nil {
		return fmt.Errorf("closing %q: %w", n.cmd, err)
	}
	n.log.LogAttrs(context.Background(), slog.LevelInfo, "stopped command", slog.String("cmd", n.cmd), slog.Int("pid", p.Pid()))
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
