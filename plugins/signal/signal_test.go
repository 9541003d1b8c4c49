//go:build unix

package signal_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc"
	"github.com/svidagent/svidagent/internal/proc/proctest"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/plugins/signal"
)

func TestMain(m *testing.M) {
	proctest.MaybeRunChild()
	os.Exit(m.Run())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		cfg        signal.Config
		wantFields []string
		wantText   string
	}{
		{name: "valid", cfg: signal.Config{PIDFile: "/run/x.pid", Signal: "SIGHUP"}},
		{name: "valid short lower", cfg: signal.Config{PIDFile: "/run/x.pid", Signal: "usr1"}},
		{name: "empty", cfg: signal.Config{}, wantFields: []string{"pid_file", "signal"}, wantText: "is required"},
		{name: "valid options", cfg: signal.Config{PIDFile: "/run/x.pid", Signal: "HUP", AllowPID1: true, RetryBackoff: "250ms"}},
		{name: "bad retry_backoff", cfg: signal.Config{PIDFile: "/run/x.pid", Signal: "HUP", RetryBackoff: "-1s"}, wantFields: []string{"retry_backoff"}, wantText: "positive duration"},
		{name: "unknown signal", cfg: signal.Config{PIDFile: "/run/x.pid", Signal: "SIGRELOAD"}, wantFields: []string{"signal"}, wantText: "use one of SIGHUP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			fes := hostapi.AsFieldErrors(err)
			var fields []string
			for _, fe := range fes {
				fields = append(fields, fe.Field)
			}
			if strings.Join(fields, ",") != strings.Join(tt.wantFields, ",") {
				t.Fatalf("Validate() = %v; fields %q, want %q", err, fields, tt.wantFields)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Validate() = %v, want it to say %q", err, tt.wantText)
			}
			if _, err := signal.New(&tt.cfg, nil); (err == nil) != (len(tt.wantFields) == 0) {
				t.Fatalf("New() = %v, want the same verdict as Validate", err)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	m, ok := registry.Lookup(hostapi.KindNotifier, "signal")
	if !ok {
		t.Fatal("notifier.signal is not registered")
	}
	cfg, ok := m.NewConfig().(*signal.Config)
	if !ok {
		t.Fatalf("NewConfig() = %T", m.NewConfig())
	}
	cfg.PIDFile, cfg.Signal = "/run/x.pid", "SIGHUP"
	n, err := m.New(cfg, registry.Env{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, ok := n.(hostapi.Notifier); !ok {
		t.Fatalf("New() = %T, not a hostapi.Notifier", n)
	}
}

// startChild runs a real child that reports the signals it gets.
func startChild(t *testing.T, ev *proctest.Events) int {
	t.Helper()
	p, err := proc.Start(proctest.Executable(t), nil, proc.Options{Env: ev.Env(proctest.ModeServe)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	if got := ev.Next(t, "start"); got.Pid != p.Pid() {
		t.Fatalf("start from %d, want %d", got.Pid, p.Pid())
	}
	return p.Pid()
}

func TestNotifyRereadsPIDFile(t *testing.T) {
	ev1, ev2 := proctest.NewEvents(t), proctest.NewEvents(t)
	pid1, pid2 := startChild(t, ev1), startChild(t, ev2)
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	n, err := signal.New(&signal.Config{PIDFile: pidFile, Signal: "HUP"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx := context.Background()
	ev := &hostapi.RotationEvent{Name: "default", Reason: hostapi.ChangedX509}

	write := func(s string) {
		if err := os.WriteFile(pidFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strconv.Itoa(pid1) + "\n")
	if err := n.Notify(ctx, ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got := ev1.Next(t, "signal"); got.Extra != "SIGHUP" {
		t.Fatalf("first child got %q", got.Extra)
	}

	// The process restarted: a new pid, with white space around it.
	write("  \t" + strconv.Itoa(pid2) + " \n\n")
	if err := n.Notify(ctx, ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got := ev2.Next(t, "signal"); got.Extra != "SIGHUP" {
		t.Fatalf("second child got %q", got.Extra)
	}
	// The first child got nothing more: a second signal to the second
	// child arrives after anything stray would have.
	if err := n.Notify(ctx, ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	ev2.Next(t, "signal")
	ev1.None(t)
}

func TestNotifyErrors(t *testing.T) {
	// A pid that was just reaped is very unlikely to be reused at once.
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name     string
		content  *string
		wantText []string
	}{
		{name: "missing file", wantText: []string{"reading pid file", "no such file", "check pid_file"}},
		{name: "empty", content: ptr(""), wantText: []string{`"" is not a positive process id`, "check pid_file"}},
		{name: "garbage", content: ptr("nginx\n"), wantText: []string{`"nginx" is not a positive process id`}},
		{name: "zero would signal our own group", content: ptr("0"), wantText: []string{"not a positive process id"}},
		{name: "negative would signal a group", content: ptr("-1"), wantText: []string{"not a positive process id"}},
		{name: "no such process", content: ptr(strconv.Itoa(gone.Process.Pid)), wantText: []string{"signaling pid " + strconv.Itoa(gone.Process.Pid), "no such process", "pid_file"}},
		{name: "pid 1 refused", content: ptr("1\n"), wantText: []string{"names pid 1", "allow_pid_1"}},
		{name: "too large", content: ptr(strings.Repeat(" ", signal.MaxPIDFileSize) + "42"), wantText: []string{"larger than 64 bytes"}},
		{name: "control bytes quoted", content: ptr("\x1b[2J12"), wantText: []string{`"\x1b[2J12" is not a positive`}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(dir, strconv.Itoa(i)+".pid")
			if tt.content != nil {
				if err := os.WriteFile(pidFile, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			n, err := signal.New(&signal.Config{PIDFile: pidFile, Signal: "SIGUSR1", RetryBackoff: "1h"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			err = n.Notify(context.Background(), &hostapi.RotationEvent{})
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Notify() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestPIDFileHostile: whatever sits at pid_file, Notify fails at once with
// a clear error, reads at most MaxPIDFileSize bytes, and never blocks.
func TestPIDFileHostile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantText string
	}{
		// Opening a FIFO for reading blocks until a writer comes, unless
		// it is opened non-blocking.
		{name: "fifo without a writer", path: fifo, wantText: "is a FIFO, not a regular file"},
		// Reading /dev/zero to the end never ends and grows memory.
		{name: "dev zero", path: "/dev/zero", wantText: "is a device, not a regular file"},
		{name: "directory", path: dir, wantText: "is a directory, not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := signal.New(&signal.Config{PIDFile: tt.path, Signal: "SIGUSR1", RetryBackoff: "1h"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- n.Notify(context.Background(), &hostapi.RotationEvent{}) }()
			select {
			case err = <-done:
			case <-time.After(proctest.Timeout):
				t.Fatalf("Notify still blocked on %s after %v", tt.path, proctest.Timeout)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Notify() = %v, want it to say %q", err, tt.wantText)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRetryUntilPIDFileAppears is spiffe-helper #333: the pid file is not
// there yet at the first rotation; the signal is sent once it appears,
// without another rotation. The retry is the agent's (one mechanism for
// every notifier); the notifier gives its first delay, retry_backoff.
func TestRetryUntilPIDFileAppears(t *testing.T) {
	ev := proctest.NewEvents(t)
	pid := startChild(t, ev)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "late.pid")
	cfgPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
issuer "dev" {
  trust_domain = "example.org"
}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = %q
  }
  notifier "signal" {
    pid_file      = %q
    signal        = "USR1"
    retry_backoff = "10ms"
  }
}
`, filepath.Join(dir, "out"), pidFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan struct{}, 100)
	log := slog.New(&msgHook{msg: "notifying failed", hit: failed})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.New(cfg, agent.WithLogger(log)).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-failed:
	case <-time.After(20 * time.Second):
		t.Fatal("the first notification never failed")
	}
	// Written in place, so a retry may read it half-written: that fails
	// and is retried too.
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ev.Next(t, "signal"); got.Extra != "SIGUSR1" {
		t.Fatalf("child got %q, want SIGUSR1", got.Extra)
	}
	// Sent once: the retries ended with it.
	cancel()
	<-done
	done <- nil
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := ev.Next(t, "signal"); got.Extra != "SIGHUP" {
		t.Fatalf("child got %q, want the test's own SIGHUP", got.Extra)
	}
	ev.None(t)
}

// msgHook is a slog handler that reports records whose message starts
// with msg.
type msgHook struct {
	msg string
	hit chan struct{}
}

func (h *msgHook) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgHook) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.msg) {
		select {
		case h.hit <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h *msgHook) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *msgHook) WithGroup(string) slog.Handler      { return h }

// TestNotifyFailsOnceAndCloses: without a pid file Notify fails at once
// (the agent retries it, from RetryBackoff), and fails with ErrClosed
// after Close.
func TestNotifyFailsOnceAndCloses(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	n, err := signal.New(&signal.Config{PIDFile: pidFile, Signal: "USR2", RetryBackoff: "250ms"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.RetryBackoff(); got != 250*time.Millisecond {
		t.Fatalf("RetryBackoff() = %v, want 250ms", got)
	}
	if err := n.Notify(context.Background(), &hostapi.RotationEvent{}); err == nil {
		t.Fatal("Notify succeeded without a pid file")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), &hostapi.RotationEvent{}); !errors.Is(err, signal.ErrClosed) {
		t.Fatalf("Notify after Close = %v, want ErrClosed", err)
	}
}
