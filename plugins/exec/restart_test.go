//go:build unix

package exec_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/proc/proctest"
	"github.com/svidagent/svidagent/plugins/exec"
)

// logRecord is one record the notifier logged.
type logRecord struct {
	Time  time.Time
	Msg   string
	Attrs map[string]slog.Value
}

// logEvents is a slog.Handler that hands every record to the test, so
// that tests wait for what the supervisor decided instead of sleeping.
type logEvents struct{ c chan logRecord }

func newLogEvents() *logEvents { return &logEvents{c: make(chan logRecord, 1024)} }

func (h *logEvents) Enabled(context.Context, slog.Level) bool { return true }
func (h *logEvents) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logEvents) WithGroup(string) slog.Handler            { return h }
func (h *logEvents) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Time: r.Time, Msg: r.Message, Attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool { rec.Attrs[a.Key] = a.Value; return true })
	h.c <- rec
	return nil
}

// next waits for the next record whose message is msg, skipping others.
func (h *logEvents) next(t *testing.T, msg string) logRecord {
	t.Helper()
	deadline := time.After(proctest.Timeout)
	for {
		select {
		case r := <-h.c:
			if r.Msg == msg {
				return r
			}
		case <-deadline:
			t.Fatalf("no %q logged within %v", msg, proctest.Timeout)
		}
	}
}

const (
	logStarted    = "started command"
	logRestarting = "command exited; restarting it"
	logNotRestart = "command exited; not restarting it until the next rotation"
)

// newSupervised builds a notifier on the test binary in mode with the
// restart settings given, logging to the returned handler.
func newSupervised(t *testing.T, ev *proctest.Events, mode, restart, backoff string) (*exec.Notifier, *logEvents) {
	t.Helper()
	c := exec.DefaultConfig()
	c.Cmd = proctest.Executable(t)
	c.Restart, c.RestartBackoff = restart, backoff
	logs := newLogEvents()
	n, err := exec.New(c, slog.New(logs), exec.WithEnv(ev.Env(mode)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n, logs
}

// A command that keeps failing is restarted with a doubling delay,
// counted over its start events; the delays are measured between the
// supervisor's own records.
func TestRestartCrashLoopBacksOff(t *testing.T) {
	ev := proctest.NewEvents(t)
	// A run shorter than ResetAfterRuns × 100ms = 1s keeps the backoff
	// doubling: the start of a race-instrumented child under its reaper
	// (two executions of the test binary) takes a good part of 200ms.
	n, logs := newSupervised(t, ev, proctest.ModeExit, exec.RestartOnFailure, "100ms")
	notify(t, n)
	pids := map[int]bool{ev.Next(t, "start").Pid: true}
	logs.next(t, logStarted)
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, w := range want {
		r := logs.next(t, logRestarting)
		if got := r.Attrs["delay"].Duration(); got != w {
			t.Fatalf("restart %d: delay %v, want %v", i+1, got, w)
		}
		if got := r.Attrs["exit"].String(); got != "exit status 3" {
			t.Fatalf("restart %d: exit %q, want exit status 3", i+1, got)
		}
		s := logs.next(t, logStarted)
		if gap := s.Time.Sub(r.Time); gap < w {
			t.Fatalf("restart %d: started %v after the exit was seen, before its %v delay", i+1, gap, w)
		}
		start := ev.Next(t, "start")
		if pids[start.Pid] {
			t.Fatalf("restart %d: pid %d seen before", i+1, start.Pid)
		}
		pids[start.Pid] = true
		if got := s.Attrs["run"].Int64(); got != int64(i+2) {
			t.Fatalf("restart %d: run %d, want %d", i+1, got, i+2)
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name        string
		restart     string
		sig         syscall.Signal // sent to the serving child to end it
		wantExit    string
		wantRestart bool
	}{
		{name: "on-failure restarts after death by signal", restart: exec.RestartOnFailure, sig: syscall.SIGKILL, wantExit: "signal: killed", wantRestart: true},
		{name: "on-failure leaves exit 0 to the next rotation", restart: exec.RestartOnFailure, sig: syscall.SIGTERM, wantExit: "exit status 0"},
		{name: "always restarts after exit 0", restart: exec.RestartAlways, sig: syscall.SIGTERM, wantExit: "exit status 0", wantRestart: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := proctest.NewEvents(t)
			n, logs := newSupervised(t, ev, proctest.ModeServe, tt.restart, "10ms")
			notify(t, n)
			first := ev.Next(t, "start")
			logs.next(t, logStarted)
			if err := syscall.Kill(first.Pid, tt.sig); err != nil {
				t.Fatal(err)
			}
			if tt.sig == syscall.SIGTERM {
				ev.Next(t, "term")
			}
			if !tt.wantRestart {
				r := logs.next(t, logNotRestart)
				if got := r.Attrs["exit"].String(); got != tt.wantExit {
					t.Fatalf("exit %q, want %q", got, tt.wantExit)
				}
				ev.None(t)
				// The next rotation starts it, as with restart = "never".
				notify(t, n)
				second := ev.Next(t, "start")
				if second.Pid == first.Pid {
					t.Fatal("not started again at the rotation")
				}
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
				ev.Next(t, "term") // the only run left is the rotation's
				ev.None(t)
				return
			}
			r := logs.next(t, logRestarting)
			if got := r.Attrs["exit"].String(); got != tt.wantExit {
				t.Fatalf("exit %q, want %q", got, tt.wantExit)
			}
			second := ev.Next(t, "start")
			if second.Pid == first.Pid || n.Pid() != second.Pid {
				t.Fatalf("restarted as %d (Pid() %d), first was %d", second.Pid, n.Pid(), first.Pid)
			}
		})
	}
}

// Close during a backoff wait returns at once and nothing starts again.
func TestCloseDuringBackoff(t *testing.T) {
	ev := proctest.NewEvents(t)
	n, logs := newSupervised(t, ev, proctest.ModeExit, exec.RestartAlways, "1h")
	notify(t, n)
	first := ev.Next(t, "start")
	if d := logs.next(t, logRestarting).Attrs["delay"].Duration(); d != time.Hour {
		t.Fatalf("delay %v, want 1h", d)
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(proctest.Timeout):
		t.Fatal("Close waited out the backoff")
	}
	if err := n.Notify(context.Background(), rotation); !errors.Is(err, exec.ErrClosed) {
		t.Fatalf("Notify after Close = %v, want ErrClosed", err)
	}
	if n.Pid() != first.Pid || !proctest.Reaped(first.Pid) {
		t.Fatalf("Pid() %d, first %d reaped: %v", n.Pid(), first.Pid, proctest.Reaped(first.Pid))
	}
	select {
	case r := <-logs.c:
		if r.Msg == logStarted {
			t.Fatalf("started after Close: %+v", r)
		}
	default:
	}
	ev.None(t)
}

// A rotation during a backoff starts the command at once; the supervisor
// then watches the new run.
func TestRotationDuringBackoffStartsAtOnce(t *testing.T) {
	ev := proctest.NewEvents(t)
	n, logs := newSupervised(t, ev, proctest.ModeExit, exec.RestartOnFailure, "1h")
	notify(t, n)
	first := ev.Next(t, "start")
	logs.next(t, logRestarting)
	notify(t, n)
	second := ev.Next(t, "start")
	if second.Pid == first.Pid {
		t.Fatal("the rotation did not start the command")
	}
	// The second run fails quickly too: its backoff is the doubled one,
	// capped at restart_backoff itself because it exceeds the 1m cap.
	r := logs.next(t, logRestarting)
	if got := r.Attrs["pid"].Int64(); got != int64(second.Pid) {
		t.Fatalf("supervisor saw pid %d exit, want the rotation's %d", got, second.Pid)
	}
	if d := r.Attrs["delay"].Duration(); d != time.Hour {
		t.Fatalf("delay %v, want 1h", d)
	}
}

// Notify, Close and a crash-looping supervisor race; afterwards nothing
// runs and nothing starts.
func TestRestartNotifyCloseHammer(t *testing.T) {
	ev := proctest.NewEvents(t)
	c := exec.DefaultConfig()
	c.Cmd = proctest.Executable(t)
	c.Restart, c.RestartBackoff = exec.RestartAlways, "1ms"
	c.Signal = "SIGUSR1"
	n, err := exec.New(c, nil, exec.WithEnv(ev.Env(proctest.ModeExit)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 70 {
				errs <- n.Close()
				return
			}
			if err := n.Notify(context.Background(), rotation); err != nil && !errors.Is(err, exec.ErrClosed) {
				errs <- err
			}
			_ = n.Pid()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	pid := n.Pid()
	if pid == 0 || !proctest.Reaped(pid) {
		t.Fatalf("command %d not started or left running after Close", pid)
	}
	if err := n.Notify(context.Background(), rotation); !errors.Is(err, exec.ErrClosed) {
		t.Fatalf("Notify after Close = %v", err)
	}
	if n.Pid() != pid {
		t.Fatalf("started again after Close: %d, then %d", pid, n.Pid())
	}
}
