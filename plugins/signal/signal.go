//go:build unix

package signal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc"
	"github.com/svidagent/svidagent/internal/registry"
)

func init() {
	registry.Register(registry.Module{
		ID:        "notifier.signal",
		NewConfig: func() any { return DefaultConfig() },
		New: func(cfg any, env registry.Env) (any, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("building notifier.signal: config is %T, want *signal.Config", cfg)
			}
			return New(c, env.Logger)
		},
	})
}

// Notifier sends a signal to the pid in a file on each rotation.
type Notifier struct {
	pidFile string
	sig     syscall.Signal
	log     *slog.Logger
}

var _ hostapi.Notifier = (*Notifier)(nil)

// New validates cfg and returns its notifier. A nil logger discards.
func New(cfg *Config, logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sig, _ := proc.ParseSignal(cfg.Signal) // validated
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{pidFile: cfg.PIDFile, sig: sig, log: logger}, nil
}

// Notify reads the pid file and signals the pid in it. A missing or
// malformed file, or a pid that is not running, is an error; the next
// rotation tries again.
func (n *Notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	pid, err := readPID(n.pidFile)
	if err != nil {
		return err
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
// path.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading pid file %q: %w; check pid_file and that the process wrote it", path, err)
	}
	s := string(bytes.TrimSpace(b))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		if len(s) > 32 {
			s = s[:32] + "..."
		}
		return 0, fmt.Errorf("reading pid file %q: %q is not a positive process id; check pid_file points at the process's pid file", path, s)
	}
	return pid, nil
}
