//go:build unix

package signal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc"
	"github.com/svidagent/svidagent/internal/registry"
)

func init() {
	registry.RegisterNotifier("signal", DefaultConfig, func(c *Config, env registry.Env) (hostapi.Notifier, error) {
		return New(c, env.Logger)
	})
}

// Limits of the notifier.
const (
	// MaxPIDFileSize is the largest pid file read; a larger one is refused
	// unread.
	MaxPIDFileSize = 64
	// DefaultRetryBackoff is RetryBackoff's default.
	DefaultRetryBackoff = time.Second
	// MaxRetryBackoff caps the doubling of the retry delay.
	MaxRetryBackoff = 30 * time.Second
)

// ErrClosed is returned by Notify after Close.
var ErrClosed = errors.New("notifier.signal is closed")

// Notifier sends a signal to the pid in a file on each rotation. It is
// safe for concurrent use.
type Notifier struct {
	pidFile   string
	sig       syscall.Signal
	allowPID1 bool
	backoff   time.Duration
	log       *slog.Logger

	mu     sync.Mutex
	closed bool
}

var (
	_ hostapi.Notifier = (*Notifier)(nil)
	_ io.Closer        = (*Notifier)(nil)
)

// New validates cfg and returns its notifier. A nil logger discards.
func New(cfg *Config, logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sig, _ := proc.ParseSignal(cfg.Signal) // validated
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{pidFile: cfg.PIDFile, sig: sig, allowPID1: cfg.AllowPID1, backoff: cfg.retryBackoff(), log: logger}, nil
}

// Notify reads the pid file and signals the pid in it. A missing,
// oversized, non-regular or malformed file, pid 1 (unless allowed) or a
// pid that is not running is an error; the agent then tries the
// notification again with a jittered backoff from RetryBackoff until the
// signal is sent or a newer rotation supersedes it (spiffe-helper #333).
func (n *Notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("notifying pid file %q: %w", n.pidFile, ErrClosed)
	}
	return n.signal(ctx)
}

// RetryBackoff is the first delay before the agent tries a failed signal
// again (retry_backoff); it doubles up to the agent's maximum.
func (n *Notifier) RetryBackoff() time.Duration { return n.backoff }

// Close makes Notify fail with ErrClosed. It is idempotent.
func (n *Notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	return nil
}

// signal reads the pid file and signals its pid once.
func (n *Notifier) signal(ctx context.Context) error {
	pid, err := readPID(n.pidFile)
	if err != nil {
		return err
	}
	if pid == 1 && !n.allowPID1 {
		return fmt.Errorf("reading pid file %q: it names pid 1 (init), which is refused; fix the pid file, or set allow_pid_1 = true if the process really is the first of its container", n.pidFile)
	}
	if err := syscall.Kill(pid, n.sig); err != nil {
		switch {
		case errors.Is(err, syscall.ESRCH):
			return fmt.Errorf("signaling pid %d from pid file %q with %s: no such process; check that the process is running and that it rewrites pid_file when it restarts", pid, n.pidFile, proc.SignalName(n.sig))
		case errors.Is(err, syscall.EPERM):
			return fmt.Errorf("signaling pid %d from pid file %q with %s: %w; run the agent as the process's user or as root", pid, n.pidFile, proc.SignalName(n.sig), err)
		}
		return fmt.Errorf("signaling pid %d from pid file %q with %s: %w", pid, n.pidFile, proc.SignalName(n.sig), err)
	}
	n.log.LogAttrs(ctx, slog.LevelInfo, "signaled process", slog.Int("pid", pid), slog.String("signal", proc.SignalName(n.sig)), slog.String("pid_file", n.pidFile))
	return nil
}

// readPID reads a positive pid, surrounded by optional white space, from
// path. The file must be a regular file of at most MaxPIDFileSize bytes:
// it is opened non-blocking, so that a FIFO or a device fails at once
// instead of blocking the notifier or filling its memory (/dev/zero).
func readPID(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return 0, fmt.Errorf("reading pid file %q: %w; check pid_file and that the process wrote it", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("reading pid file %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("reading pid file %q: it is a %s, not a regular file; point pid_file at the file the process writes its pid to", path, fileType(fi.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxPIDFileSize+1))
	if err != nil {
		return 0, fmt.Errorf("reading pid file %q: %w", path, err)
	}
	if len(b) > MaxPIDFileSize {
		return 0, fmt.Errorf("reading pid file %q: it is larger than %d bytes, too large for a pid file; check pid_file", path, MaxPIDFileSize)
	}
	s := string(bytes.TrimSpace(b))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("reading pid file %q: %q is not a positive process id; check pid_file points at the process's pid file", path, s)
	}
	return pid, nil
}

// fileType names the type of a file that is not regular.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
