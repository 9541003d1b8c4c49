//go:build unix

package signal_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(dir, strconv.Itoa(i)+".pid")
			if tt.content != nil {
				if err := os.WriteFile(pidFile, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			n, err := signal.New(&signal.Config{PIDFile: pidFile, Signal: "SIGUSR1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
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
