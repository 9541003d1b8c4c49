//go:build unix

package exec_test

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/proc/proctest"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/plugins/exec"
)

func TestMain(m *testing.M) {
	proctest.MaybeRunChild()
	os.Exit(m.Run())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		cfg        func(*exec.Config)
		wantFields []string
		wantText   string
	}{
		{name: "valid", cfg: func(c *exec.Config) {
			c.Cmd = "ghostunnel"
			c.Args = "server --listen localhost:8002"
			c.Signal = "SIGUSR1"
		}},
		{name: "valid argv", cfg: func(c *exec.Config) { c.Cmd = "sh"; c.Argv = []string{"-c", "echo hi"} }},
		{name: "cmd required", cfg: func(c *exec.Config) {}, wantFields: []string{"cmd"}, wantText: "is required"},
		{name: "args and argv", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Args = "a"; c.Argv = []string{"a"} }, wantFields: []string{"args"}, wantText: "mutually exclusive"},
		{name: "args unterminated quote", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Args = `-c "echo` }, wantFields: []string{"args"}, wantText: "use argv"},
		{name: "args bare quote", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Args = `a"b` }, wantFields: []string{"args"}, wantText: "bare"},
		{name: "unknown signal", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Signal = "SIGNOPE" }, wantFields: []string{"signal"}, wantText: "use one of"},
		{name: "bad stop_timeout", cfg: func(c *exec.Config) { c.Cmd = "x"; c.StopTimeout = "10" }, wantFields: []string{"stop_timeout"}, wantText: `"10s"`},
		{name: "zero stop_timeout", cfg: func(c *exec.Config) { c.Cmd = "x"; c.StopTimeout = "0s" }, wantFields: []string{"stop_timeout"}, wantText: "positive"},
		{name: "restart policies", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Restart = "on-failure"; c.RestartBackoff = "250ms" }},
		{name: "restart always", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Restart = "always" }},
		{name: "restart never", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Restart = "never" }},
		{name: "unknown restart", cfg: func(c *exec.Config) { c.Cmd = "x"; c.Restart = "unless-stopped" }, wantFields: []string{"restart"}, wantText: `"on-failure"`},
		{name: "bad restart_backoff", cfg: func(c *exec.Config) { c.Cmd = "x"; c.RestartBackoff = "1" }, wantFields: []string{"restart_backoff"}, wantText: `"500ms"`},
		{name: "zero restart_backoff", cfg: func(c *exec.Config) { c.Cmd = "x"; c.RestartBackoff = "0s" }, wantFields: []string{"restart_backoff"}, wantText: "positive"},
		{name: "everything wrong", cfg: func(c *exec.Config) { c.Signal = "x"; c.StopTimeout = ""; c.Restart = "x"; c.RestartBackoff = "-1s" }, wantFields: []string{"cmd", "signal", "stop_timeout", "restart", "restart_backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := exec.DefaultConfig()
			tt.cfg(cfg)
			err := cfg.Validate()
			var fields []string
			for _, fe := range hostapi.AsFieldErrors(err) {
				fields = append(fields, fe.Field)
			}
			if !slices.Equal(fields, tt.wantFields) {
				t.Fatalf("Validate() = %v; fields %q, want %q", err, fields, tt.wantFields)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Validate() = %v, want it to say %q", err, tt.wantText)
			}
			if _, err := exec.New(cfg, nil); (err == nil) != (len(tt.wantFields) == 0) {
				t.Fatalf("New() = %v, want the same verdict as Validate", err)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	m, ok := registry.Lookup(hostapi.KindNotifier, "exec")
	if !ok {
		t.Fatal("notifier.exec is not registered")
	}
	cfg := m.NewConfig().(*exec.Config)
	if cfg.StopTimeout != "10s" {
		t.Fatalf("default stop_timeout = %q", cfg.StopTimeout)
	}
	cfg.Cmd = "true"
	n, err := m.New(cfg, registry.Env{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, ok := n.(hostapi.Notifier); !ok {
		t.Fatalf("New() = %T, not a hostapi.Notifier", n)
	}
	if err := n.(interface{ Close() error }).Close(); err != nil {
		t.Fatalf("Close of a never-started notifier: %v", err)
	}
}

var rotation = &hostapi.RotationEvent{Name: "default", Reason: hostapi.ChangedX509}

// newNotifier builds a notifier whose command is the test binary as a
// child in mode.
func newNotifier(t *testing.T, ev *proctest.Events, mode string, cfg func(*exec.Config), env ...string) *exec.Notifier {
	t.Helper()
	c := exec.DefaultConfig()
	c.Cmd = proctest.Executable(t)
	if cfg != nil {
		cfg(c)
	}
	n, err := exec.New(c, nil, exec.WithEnv(append(ev.Env(mode), env...)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func notify(t *testing.T, n *exec.Notifier) {
	t.Helper()
	if err := n.Notify(context.Background(), rotation); err != nil {
		t.Fatalf("Notify: %v", err)
	}
}

func TestStartOnFirstNotifySignalAfterwards(t *testing.T) {
	ev := proctest.NewEvents(t)
	n := newNotifier(t, ev, proctest.ModeServe, func(c *exec.Config) {
		c.Args = `--listen localhost:8002 "two words" "a ""quoted"" one"`
		c.Signal = "SIGUSR1"
	})
	if n.Pid() != 0 {
		t.Fatal("the command started before the first Notify")
	}
	ev.None(t)

	notify(t, n)
	start := ev.Next(t, "start")
	if start.Pid != n.Pid() {
		t.Fatalf("child pid %d, Pid() %d", start.Pid, n.Pid())
	}
	if want := []string{"--listen", "localhost:8002", "two words", `a "quoted" one`}; !slices.Equal(start.Args(), want) {
		t.Fatalf("args %q, want %q", start.Args(), want)
	}
	for range 2 {
		notify(t, n)
		if got := ev.Next(t, "signal"); got.Extra != "SIGUSR1" || got.Pid != start.Pid {
			t.Fatalf("got %+v, want SIGUSR1 to %d", got, start.Pid)
		}
	}

	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ev.Next(t, "term")
	if !proctest.Reaped(start.Pid) {
		t.Fatalf("pid %d not reaped after Close", start.Pid)
	}
	if err := n.Notify(context.Background(), rotation); !errors.Is(err, exec.ErrClosed) {
		t.Fatalf("Notify after Close = %v, want ErrClosed", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ev.None(t) // not restarted
}

func TestNoSignalLeavesCommandAlone(t *testing.T) {
	ev := proctest.NewEvents(t)
	n := newNotifier(t, ev, proctest.ModeServe, func(c *exec.Config) { c.Argv = []string{"x y", ""} })
	notify(t, n)
	start := ev.Next(t, "start")
	if want := []string{"x y", ""}; !slices.Equal(start.Args(), want) {
		t.Fatalf("args %q, want %q", start.Args(), want)
	}
	notify(t, n)
	notify(t, n)
	if n.Pid() != start.Pid {
		t.Fatal("the command was restarted")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// Had Notify signaled or restarted, that event would come first.
	ev.Next(t, "term")
	ev.None(t)
}

func TestRelaunchAfterExit(t *testing.T) {
	tests := []struct {
		name string
		mode string
		kill bool
	}{
		{name: "command exits by itself", mode: proctest.ModeExit},
		{name: "command killed from outside", mode: proctest.ModeServe, kill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := proctest.NewEvents(t)
			n := newNotifier(t, ev, tt.mode, func(c *exec.Config) { c.Signal = "SIGHUP" })
			notify(t, n)
			first := ev.Next(t, "start")
			if tt.kill {
				if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			// Reaping leaves no event to wait on.
			proctest.Eventually(t, "the command to be reaped", func() bool { return proctest.Reaped(first.Pid) })

			notify(t, n)
			second := ev.Next(t, "start")
			if second.Pid == first.Pid || n.Pid() != second.Pid {
				t.Fatalf("relaunched as %d (Pid() %d), first was %d", second.Pid, n.Pid(), first.Pid)
			}
			if tt.mode == proctest.ModeServe {
				notify(t, n)
				if got := ev.Next(t, "signal"); got.Pid != second.Pid || got.Extra != "SIGHUP" {
					t.Fatalf("got %+v, want SIGHUP to the relaunched %d", got, second.Pid)
				}
			}
		})
	}
}

func TestStartFailureIsRetried(t *testing.T) {
	c := exec.DefaultConfig()
	c.Cmd = "/nonexistent/ghostunnel"
	n, err := exec.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err := n.Notify(context.Background(), rotation)
		if err == nil || !strings.Contains(err.Error(), `starting "/nonexistent/ghostunnel"`) || !strings.Contains(err.Error(), "check cmd") {
			t.Fatalf("Notify = %v, want a start error that says what to check", err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsProcessGroup(t *testing.T) {
	tests := []struct {
		name           string
		grandchildMode string
		stopTimeout    string
		wantKill       bool
	}{
		{name: "sigterm", grandchildMode: proctest.ModeServe, stopTimeout: "10s"},
		{name: "sigkill after stop_timeout", grandchildMode: proctest.ModeIgnoreTerm, stopTimeout: "300ms", wantKill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := proctest.NewEvents(t)
			n := newNotifier(t, ev, proctest.ModeSpawn, func(c *exec.Config) { c.StopTimeout = tt.stopTimeout },
				proctest.EnvGrandchildMode+"="+tt.grandchildMode)
			notify(t, n)
			starts := ev.Collect(t, "start", 2)
			pgid := starts["child"].Pid
			if starts["grandchild"].Pgid() != pgid {
				t.Fatalf("grandchild in group %d, want %d", starts["grandchild"].Pgid(), pgid)
			}
			err := n.Close()
			if tt.wantKill != (err != nil) || (err != nil && !strings.Contains(err.Error(), "sent SIGKILL")) {
				t.Fatalf("Close = %v, want SIGKILL reported: %v", err, tt.wantKill)
			}
			if got := proctest.GroupMembers(t, pgid); len(got) != 0 {
				t.Fatalf("group %d still has %v after Close", pgid, got)
			}
			if !proctest.Reaped(pgid) {
				t.Fatalf("command %d not reaped (zombie) after Close", pgid)
			}
		})
	}
}

// Notify and Close race; the lock keeps them apart.
func TestNotifyCloseHammer(t *testing.T) {
	ev := proctest.NewEvents(t)
	n := newNotifier(t, ev, proctest.ModeServe, func(c *exec.Config) { c.Signal = "SIGUSR2" })
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 50 {
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
	if pid := n.Pid(); pid != 0 && !proctest.Reaped(pid) {
		t.Fatalf("command %d left running after Close", pid)
	}
}

// TestCommandInheritsAgentStdin is spiffe-helper #245: cmd reads the
// agent's stdin. The agent's os.Stdin is a pipe here; what the test writes
// into it comes back on the command's stdout.
func TestCommandInheritsAgentStdin(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inR.Close(); inW.Close(); outR.Close(); outW.Close() })
	saved := os.Stdin
	os.Stdin = inR
	cfg := exec.DefaultConfig()
	cfg.Cmd, cfg.Argv = "/bin/sh", []string{"-c", "read line && echo \"got $line\""}
	n, err := exec.New(cfg, nil, exec.WithOutput(outW, os.Stderr))
	os.Stdin = saved
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Notify(context.Background(), &hostapi.RotationEvent{}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if _, err := inW.WriteString("from-agent-stdin\n"); err != nil {
		t.Fatal(err)
	}
	outW.Close() // the child holds its own copy
	got, err := io.ReadAll(outR)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "got from-agent-stdin\n" {
		t.Fatalf("command printed %q, want it to echo what the agent's stdin carried", got)
	}
}
