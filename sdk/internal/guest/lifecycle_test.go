package guest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/dispatch"
	"github.com/svidagent/svidagent/sdk/internal/guest"
	"google.golang.org/protobuf/proto"
)

// lifecycleNotifier is a notifier with a background goroutine per Start. It
// records every Configure, Start and Stop in order, and checks that Stop
// waits for a goroutine that exits on its context.
type lifecycleNotifier struct {
	notifier
	mu       sync.Mutex
	log      []string
	startErr error
	running  atomic.Int32 // goroutines alive
	done     chan struct{}
	cfg      string
}

func (n *lifecycleNotifier) Configure(ctx context.Context, b []byte) error {
	if err := n.notifier.Configure(ctx, b); err != nil {
		n.record("configure-failed")
		return err
	}
	n.mu.Lock()
	n.cfg = string(b)
	n.mu.Unlock()
	n.record("configure " + string(b))
	return nil
}

func (n *lifecycleNotifier) Start(ctx context.Context) error {
	n.mu.Lock()
	cfg, err := n.cfg, n.startErr
	n.mu.Unlock()
	if err != nil {
		n.record("start-failed")
		return err
	}
	if sdk.HostFromContext(ctx) == nil {
		return errors.New("no host in the Start context")
	}
	n.record("start " + cfg)
	done := make(chan struct{})
	n.mu.Lock()
	n.done = done
	n.mu.Unlock()
	n.running.Add(1)
	go func() {
		defer close(done)
		defer n.running.Add(-1)
		<-ctx.Done() // the Dispatcher cancels it before Stop
	}()
	return nil
}

func (n *lifecycleNotifier) Stop() {
	n.mu.Lock()
	done := n.done
	n.done = nil
	n.mu.Unlock()
	if done != nil {
		<-done
	}
	n.record(fmt.Sprintf("stop running=%d", n.running.Load()))
}

func (n *lifecycleNotifier) Close() error {
	n.record("close")
	return n.notifier.Close()
}

func (n *lifecycleNotifier) record(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.log = append(n.log, s)
}

func (n *lifecycleNotifier) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.log...)
}

var _ hostapi.Lifecycle = (*lifecycleNotifier)(nil)

func TestLifecycleStartStop(t *testing.T) {
	conf := func(cfg string) func(*testing.T, *guest.Dispatcher) (uint32, string) {
		return func(t *testing.T, d *guest.Dispatcher) (uint32, string) {
			return call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{ConfigJson: []byte(cfg)}, nil)
		}
	}
	closeCall := func(t *testing.T, d *guest.Dispatcher) (uint32, string) {
		return call(t, d, abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, nil)
	}
	notify := func(t *testing.T, d *guest.Dispatcher) (uint32, string) {
		return call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), &notifierv1.NotifyRequest{Name: "x"}, nil)
	}
	type step struct {
		do       func(*testing.T, *guest.Dispatcher) (uint32, string)
		startErr error // set before the step
		cfgErr   error // set before the step
		code     uint32
		msg      string
	}
	tests := []struct {
		name    string
		steps   []step
		want    []string
		running int32
	}{
		{
			name:  "start after configure, stop at close",
			steps: []step{{do: conf(`{"url":"a"}`)}, {do: closeCall}},
			want:  []string{`configure {"url":"a"}`, `start {"url":"a"}`, "stop running=0", "close"},
		},
		{
			name:    "still running without close",
			steps:   []step{{do: conf(`{"url":"a"}`)}},
			want:    []string{`configure {"url":"a"}`, `start {"url":"a"}`},
			running: 1,
		},
		{
			name:  "stop before a re-configure",
			steps: []step{{do: conf(`{"url":"a"}`)}, {do: conf(`{"url":"b"}`)}, {do: closeCall}, {do: closeCall}},
			want: []string{`configure {"url":"a"}`, `start {"url":"a"}`, "stop running=0",
				`configure {"url":"b"}`, `start {"url":"b"}`, "stop running=0", "close"},
		},
		{
			name:  "invalid config starts nothing",
			steps: []step{{do: conf(`{}`), code: 3, msg: "url"}, {do: closeCall}},
			want:  []string{"close"},
		},
		{
			name: "start error fails configure and the plugin is not configured",
			steps: []step{
				{do: conf(`{"url":"a"}`), startErr: errors.New("token refused"), code: 2, msg: "starting plugin lc: token refused"},
				{do: notify, code: 9, msg: "not configured"},
				{do: closeCall},
			},
			want: []string{`configure {"url":"a"}`, "start-failed", "close"},
		},
		{
			name: "failed re-configure restarts the previous config",
			steps: []step{
				{do: conf(`{"url":"a"}`)},
				{do: conf(`{"url":"b"}`), cfgErr: errors.New("bad b"), code: 2, msg: "bad b"},
				{do: notify},
				{do: closeCall},
			},
			want: []string{`configure {"url":"a"}`, `start {"url":"a"}`, "stop running=0",
				"configure-failed", `start {"url":"a"}`, "stop running=0", "close"},
		},
		{
			name:  "configure after close starts nothing",
			steps: []step{{do: closeCall}, {do: conf(`{"url":"a"}`), code: 9, msg: "closed"}},
			want:  []string{"close"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &lifecycleNotifier{}
			d, err := dispatch.New(sdk.Info{Name: "lc"}, n, func(context.Context, string, []byte) (uint32, string, []byte) {
				return 0, "", nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				n.mu.Lock()
				n.startErr = s.startErr
				n.mu.Unlock()
				n.notifier.mu.Lock()
				n.notifier.configErr = s.cfgErr
				n.notifier.mu.Unlock()
				code, msg := s.do(t, d)
				if code != s.code || !strings.Contains(msg, s.msg) {
					t.Fatalf("step %d = %d %q, want %d containing %q", i, code, msg, s.code, s.msg)
				}
			}
			if got := n.events(); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if got := n.running.Load(); got != tt.running {
				t.Errorf("%d goroutines running, want %d", got, tt.running)
			}
			call(t, d, abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, nil)
			if got := n.running.Load(); got != 0 {
				t.Errorf("%d goroutines running after Close", got)
			}
		})
	}
}

// noConfigLifecycle takes no config but runs background work.
type noConfigLifecycle struct {
	starts, stops atomic.Int32
}

func (*noConfigLifecycle) Notify(context.Context, *hostapi.RotationEvent) error { return nil }
func (l *noConfigLifecycle) Start(context.Context) error                        { l.starts.Add(1); return nil }
func (l *noConfigLifecycle) Stop()                                              { l.stops.Add(1) }

func TestLifecycleWithoutConfig(t *testing.T) {
	l := &noConfigLifecycle{}
	d, err := dispatch.New(sdk.Info{Name: "lc"}, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	configure(t, d, `{}`)
	configure(t, d, ``)
	call(t, d, abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, nil)
	if s, p := l.starts.Load(), l.stops.Load(); s != 2 || p != 2 {
		t.Errorf("starts %d, stops %d; want 2 and 2", s, p)
	}
}

// TestLifecycleHammer runs notifies against concurrent re-configures and a
// final Close under -race: every Start is matched by a Stop.
func TestLifecycleHammer(t *testing.T) {
	l := &noConfigLifecycle{}
	d, err := dispatch.New(sdk.Info{Name: "lc"}, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	configure(t, d, `{}`)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if g%2 == 0 {
					call(t, d, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{}, nil)
				} else {
					call(t, d, abi.Method(abi.Notifier_Notify_FullMethodName), &notifierv1.NotifyRequest{Name: "x"}, nil)
				}
			}
		}()
	}
	wg.Wait()
	call(t, d, abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, nil)
	if s, p := l.starts.Load(), l.stops.Load(); s != 201 || p != 201 {
		t.Errorf("starts %d, stops %d; want 201 each", s, p)
	}
}

// counterHost is the host's Counter as plugin code reaches it.
type counterHost interface {
	Counter(ctx context.Context, name, help string, labels map[string]string, delta float64) error
}

// counterPlugin adds to a counter from its background work's context.
type counterPlugin struct{ noConfigLifecycle }

func (c *counterPlugin) Start(ctx context.Context) error {
	h, ok := sdk.HostFromContext(ctx).(counterHost)
	if !ok {
		return errors.New("the host has no Counter")
	}
	return h.Counter(ctx, "renewals_total", "Token renewals.", map[string]string{"result": "success"}, 1)
}

func TestHostCounter(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	host := func(_ context.Context, method string, req []byte) (uint32, string, []byte) {
		var c hostv1.AddCounter
		if err := proto.Unmarshal(req, &c); err != nil {
			return 3, err.Error(), nil
		}
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %q %v %g", method, c.GetName(), c.GetHelp(), c.GetLabels(), c.GetDelta()))
		mu.Unlock()
		if c.GetDelta() < 0 {
			return 3, "negative delta", nil
		}
		return 0, "", nil
	}
	d, err := dispatch.New(sdk.Info{Name: "lc"}, &counterPlugin{}, host)
	if err != nil {
		t.Fatal(err)
	}
	configure(t, d, `{}`)
	call(t, d, abi.Method(abi.Plugin_Close_FullMethodName), &pluginv1.CloseRequest{}, nil)
	want := `/svidagent.host.v1.Metrics/Counter renewals_total "Token renewals." map[result:success] 1`
	if len(seen) != 1 || seen[0] != want {
		t.Errorf("host calls %q, want [%q]", seen, want)
	}
	// A refused counter is an error with the host's code.
	d2, _ := dispatch.New(sdk.Info{Name: "lc"}, &counterPlugin{}, func(context.Context, string, []byte) (uint32, string, []byte) {
		return 8, "too many series", nil
	})
	code, msg := call(t, d2, abi.Method(abi.Plugin_Configure_FullMethodName), &pluginv1.ConfigureRequest{}, nil)
	if code == 0 || !strings.Contains(msg, "too many series") {
		t.Errorf("Configure = %d %q, want the host's refusal", code, msg)
	}
}
