package wasmrt_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestSlowStartRecovers checks that a plugin whose start (_initialize, here
// a 600 ms sleep in the guest's init) takes longer than its call timeout
// (100 ms) starts, and recovers from discarded instances: starting a fresh
// instance and replaying Describe and Configure to it run under the start
// deadline, not under the call's.
func TestSlowStartRecovers(t *testing.T) {
	cfg, logs := config(t, "notifier")
	cfg.Limits.CallTimeout = 100 * time.Millisecond
	cfg.Env = map[string]string{"NOTIFIER_INIT_SLEEP": "600ms"}
	var restarts atomic.Int32
	cfg.OnRestart = func() { restarts.Add(1) }
	p := open(t, cfg, `{"v":"slow"}`)
	ctx := context.Background()
	if err := notify(ctx, p, "ok"); err != nil {
		t.Fatalf("Notify: %v", err)
	}

	for i, bad := range []struct {
		name string
		code codes.Code
	}{{"panic", codes.Internal}, {"sleep", codes.DeadlineExceeded}, {"oom", codes.ResourceExhausted}} {
		if err := notify(ctx, p, bad.name); status.Code(err) != bad.code || !strings.Contains(err.Error(), "the instance was discarded") {
			t.Fatalf("Notify(%s) = %v, want %v and a discarded instance", bad.name, err, bad.code)
		}
		if i == 0 {
			// A caller whose own deadline ends while the fresh instance
			// is still starting (its init sleeps 600 ms) gets that
			// deadline; the start goes on, and is not started twice.
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := notify(short, p, "ok")
			cancel()
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "while a fresh instance was starting") {
				t.Fatalf("Notify under 50ms while starting = %v, want DEADLINE_EXCEEDED while starting", err)
			}
		}
		if err := notify(ctx, p, "ok"); err != nil {
			t.Fatalf("Notify after %s: %v (a fresh instance must start under the start deadline, not the 100ms call timeout)", bad.name, err)
		}
		err := notify(ctx, p, "echo")
		if status.Code(err) != codes.Unknown || status.Convert(err).Message() != `{"v":"slow"}` {
			t.Fatalf("echo after %s = %v, want the replayed config", bad.name, err)
		}
		if got, want := restarts.Load(), int32(i+1); got != want {
			t.Fatalf("after %d discarded instances, OnRestart was called %d times", want, got)
		}
	}
	n := 0
	for _, r := range logs.Records(t) {
		if r["msg"] == `configured {"v":"slow"}` {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d instances were configured, want the first plus one per discarded instance (4)", n)
	}
}

// TestStartFailures checks that a guest whose start hangs or traps is
// bounded by the start deadline and reported to the call that waits for
// it, each time it is retried.
func TestStartFailures(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		code  codes.Code
		wants []string
	}{
		{
			name:  "hang",
			env:   map[string]string{"NOTIFIER_INIT_SLEEP": "1h"},
			code:  codes.DeadlineExceeded,
			wants: []string{`plugin "test-notifier": starting an instance: start deadline 200ms exceeded`},
		},
		{
			name:  "panic",
			env:   map[string]string{"NOTIFIER_INIT_PANIC": "1"},
			code:  codes.Internal,
			wants: []string{`plugin "test-notifier": running _initialize`, "panic: init boom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := config(t, "notifier")
			cfg.Env = tt.env
			cfg.Limits.StartTimeout = 200 * time.Millisecond
			p, err := wasmrt.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := 0; i < 2; i++ { // the next call starts it again
				err := p.Invoke(context.Background(), adapter.MethodDescribe, &pluginv1.DescribeRequest{}, &pluginv1.DescribeResponse{})
				if status.Code(err) != tt.code {
					t.Fatalf("Describe #%d = %v, want %v", i+1, err, tt.code)
				}
				for _, w := range tt.wants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Describe #%d = %q, want it to contain %q", i+1, err, w)
					}
				}
			}
		})
	}
}

// TestCloseWhileStarting checks that Close stops an instance being started
// (its guest sleeping in init for an hour, under the default 10 s start
// deadline), releases the calls waiting for it, and leaves no goroutine
// behind.
func TestCloseWhileStarting(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg, _ := config(t, "notifier")
	cfg.Env = map[string]string{"NOTIFIER_INIT_SLEEP": "1h"}
	p, err := wasmrt.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = p.Invoke(ctx, adapter.MethodDescribe, &pluginv1.DescribeRequest{}, &pluginv1.DescribeResponse{})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "while a fresh instance was starting") {
		t.Fatalf("Describe under 100ms = %v, want DEADLINE_EXCEEDED while starting", err)
	}
	// Callers without a deadline wait for the start until Close, which
	// they race; each learns that the plugin is closed.
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() { errs <- notify(context.Background(), p, "ok") }()
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for range cap(errs) {
		if err := <-errs; status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Notify racing Close = %v, want FAILED_PRECONDITION: closed", err)
		}
	}
	if err := notify(context.Background(), p, "ok"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Notify after Close = %v, want FAILED_PRECONDITION: closed", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before Open", n, before)
	}
}

// TestStaleStartErrorRetried checks that a start that failed in the
// background (the replacement of a discarded instance, whose replayed
// Configure fails while a host-controlled file exists) is not reported to
// a later call that did not wait for it: that call starts afresh, and
// succeeds once the cause is gone. A start that keeps failing is reported
// to each call, once per call, and is not retried in the background.
func TestStaleStartErrorRetried(t *testing.T) {
	out := t.TempDir()
	flag := filepath.Join(out, "fail-configure")
	cfg, _ := config(t, "notifier")
	cfg.Kind, cfg.WriteDir = hostapi.KindWriter, out
	cfg.Limits.StartTimeout = 10 * time.Second // a failure here is the guest's, not the deadline
	var restarts atomic.Int32
	cfg.OnRestart = func() { restarts.Add(1) }
	p := open(t, cfg, `{"v":"stale"}`)
	ctx := context.Background()
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	discard := func() {
		t.Helper()
		if err := notify(ctx, p, "panic"); status.Code(err) != codes.Internal {
			t.Fatalf("Notify(panic) = %v, want INTERNAL", err)
		}
		if !wasmrt.WaitStart(p) { // the replacement, started in the background, fails
			t.Fatal("no instance is being started after a discard")
		}
	}

	// While Configure fails, a call starts afresh and is told why; the
	// background start that had failed before it came is not retried.
	discard()
	err := notify(ctx, p, "ok")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "replaying Configure") {
		t.Fatalf("Notify while Configure fails = %v, want UNAVAILABLE from replaying Configure", err)
	}
	if got := restarts.Load(); got != 2 {
		t.Fatalf("OnRestart called %d times, want 2 (the background start and the call's)", got)
	}
	if wasmrt.WaitStart(p) {
		t.Fatal("an instance is being started after a failed start: it must not be retried in the background")
	}
	if err := notify(ctx, p, "ok"); status.Code(err) != codes.Unavailable {
		t.Fatalf("second Notify while Configure fails = %v, want UNAVAILABLE", err)
	}
	if got := restarts.Load(); got != 3 {
		t.Fatalf("OnRestart called %d times, want 3 (one start per call)", got)
	}

	// Get an instance, discard it while Configure fails, then clear the
	// cause: the next call must not get the background start's old error.
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if err := notify(ctx, p, "ok"); err != nil {
		t.Fatalf("Notify once Configure works: %v", err)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	discard()
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if err := notify(ctx, p, "ok"); err != nil {
		t.Fatalf("Notify after the cause of a background start's failure is gone = %v, want success (a fresh start)", err)
	}
	if err := notify(ctx, p, "echo"); status.Convert(err).Message() != `{"v":"stale"}` {
		t.Fatalf("echo = %v, want the replayed config", err)
	}
}

// TestCloseFreesClosedModule checks that closing an instance frees its
// linear memory even when wazero had already closed the module without
// freeing it (a call's deadline firing as the guest returned).
func TestCloseFreesClosedModule(t *testing.T) {
	cfg, _ := config(t, "notifier")
	p := open(t, cfg, `{}`)
	wazeroFreed, closeFreed, err := wasmrt.CloseFreesClosedModule(p)
	if err != nil {
		t.Fatal(err)
	}
	if wazeroFreed {
		t.Fatal("wazero freed the memory of a module closed by its deadline watcher; the test no longer reproduces the leak")
	}
	if !closeFreed {
		t.Fatal("instance.close did not free the memory of an already closed module")
	}
}
