//go:build !wasip1

package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/wasm"
)

// stubNotifier is served in the stub build by this test binary.
type stubNotifier struct{}

func (stubNotifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	h := sdk.HostFromContext(ctx)
	h.Log(slog.LevelWarn, "rotated", "name", ev.Name)
	resp, err := h.HTTP(ctx, &sdk.HTTPRequest{Method: "POST", URL: "http://hook/" + ev.Name})
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return errors.New("bad status")
	}
	return nil
}

func init() { wasm.Serve(sdk.Info{Name: "stub"}, stubNotifier{}) }

type fakeHost struct {
	mu    sync.Mutex
	logs  []string
	urls  []string
	allow bool
}

func (f *fakeHost) Log(level slog.Level, msg string, attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	b.WriteString(level.String() + " " + msg)
	for _, a := range attrs {
		b.WriteString(" " + a.(string))
	}
	f.logs = append(f.logs, b.String())
}

func (f *fakeHost) HTTP(_ context.Context, req *sdk.HTTPRequest) (*sdk.HTTPResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.allow {
		return nil, sdk.ErrNotAllowed
	}
	f.urls = append(f.urls, req.Method+" "+req.URL)
	return &sdk.HTTPResponse{StatusCode: 200}, nil
}

func TestStubCall(t *testing.T) {
	var desc pluginv1.DescribeResponse
	if err := wasm.Call(context.Background(), abi.Plugin_Describe_FullMethodName, &pluginv1.DescribeRequest{}, &desc); err != nil || desc.GetName() != "stub" {
		t.Fatalf("Describe = %v, %v", &desc, err)
	}
	if err := wasm.Call(context.Background(), abi.Plugin_Configure_FullMethodName, &pluginv1.ConfigureRequest{ConfigJson: []byte("{}")}, &pluginv1.ConfigureResponse{}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	h := &fakeHost{allow: true}
	ctx := sdk.WithHost(context.Background(), h)
	if err := wasm.Call(ctx, "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web"}, &notifierv1.NotifyResponse{}); err != nil {
		t.Fatal(err)
	}
	if len(h.logs) != 1 || h.logs[0] != "WARN rotated name web" || len(h.urls) != 1 || h.urls[0] != "POST http://hook/web" {
		t.Errorf("host saw logs %q, requests %q", h.logs, h.urls)
	}
	h.allow = false
	err := wasm.Call(ctx, "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web"}, nil)
	if sdk.CodeOf(err) != sdk.CodePermissionDenied || !errors.Is(err, sdk.ErrNotAllowed) {
		t.Errorf("Notify with HTTP refused = %v (code %v), want PERMISSION_DENIED", err, sdk.CodeOf(err))
	}
	// Without a host in the context, HTTP is refused as well.
	err = wasm.Call(context.Background(), "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web"}, nil)
	if sdk.CodeOf(err) != sdk.CodePermissionDenied {
		t.Errorf("Notify without a host = %v, want PERMISSION_DENIED", err)
	}
	if err := wasm.Call(ctx, "x/Y", &pluginv1.CloseRequest{}, nil); sdk.CodeOf(err) != sdk.CodeUnimplemented {
		t.Errorf("unknown method = %v, want UNIMPLEMENTED", err)
	}
}

func TestStubServeTwice(t *testing.T) {
	// Served already by init: a second Serve poisons the plugin, loudly.
	t.Cleanup(func() { wasm.ResetForTest(); wasm.Serve(sdk.Info{Name: "stub"}, stubNotifier{}) })
	wasm.Serve(sdk.Info{Name: "again"}, stubNotifier{})
	err := wasm.Call(context.Background(), "svidagent.plugin.v1.Plugin/Describe", &pluginv1.DescribeRequest{}, nil)
	if err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("Describe after a second Serve = %v", err)
	}
}

// TestStubServeOfKind: the kind's Serve functions serve their kind, and
// refuse a nil implementation on every call.
func TestStubServeOfKind(t *testing.T) {
	t.Cleanup(func() { wasm.ResetForTest(); wasm.Serve(sdk.Info{Name: "stub"}, stubNotifier{}) })
	ctx := sdk.WithHost(context.Background(), &fakeHost{allow: true})

	wasm.ResetForTest()
	wasm.ServeNotifier(sdk.Info{Name: "kind"}, stubNotifier{})
	var desc pluginv1.DescribeResponse
	if err := wasm.Call(ctx, "svidagent.plugin.v1.Plugin/Describe", &pluginv1.DescribeRequest{}, &desc); err != nil ||
		desc.GetName() != "kind" || len(desc.GetServices()) != 2 || desc.GetServices()[1] != "svidagent.plugin.notifier.v1.Notifier" {
		t.Fatalf("Describe = %v, %v", &desc, err)
	}
	if err := wasm.Call(ctx, abi.Plugin_Configure_FullMethodName, &pluginv1.ConfigureRequest{ConfigJson: []byte("{}")}, &pluginv1.ConfigureResponse{}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := wasm.Call(ctx, "svidagent.plugin.notifier.v1.Notifier/Notify", &notifierv1.NotifyRequest{Name: "web"}, nil); err != nil {
		t.Errorf("Notify = %v", err)
	}

	for _, serve := range []struct {
		name string
		f    func()
	}{
		{"ServeNotifier", func() { wasm.ServeNotifier(sdk.Info{Name: "nil"}, nil) }},
		{"ServeWriter", func() { wasm.ServeWriter(sdk.Info{Name: "nil"}, nil) }},
		{"ServeIssuer", func() { wasm.ServeIssuer(sdk.Info{Name: "nil"}, nil) }},
	} {
		wasm.ResetForTest()
		serve.f()
		err := wasm.Call(ctx, "svidagent.plugin.v1.Plugin/Describe", &pluginv1.DescribeRequest{}, nil)
		if sdk.CodeOf(err) != sdk.CodeFailedPrecondition || !strings.Contains(err.Error(), "nil") {
			t.Errorf("%s(nil): Describe = %v, want FAILED_PRECONDITION naming the nil implementation", serve.name, err)
		}
	}
}

// ExampleServeNotifier serves a notifier from a plugin's init function;
// in a test of the plugin (the stub build), Call drives it.
func ExampleServeNotifier() {
	wasm.ResetForTest() // this package's tests served another plugin
	defer func() { wasm.ResetForTest(); wasm.Serve(sdk.Info{Name: "stub"}, stubNotifier{}) }()

	wasm.ServeNotifier(sdk.Info{Name: "notifier-hello", Version: "0.1.0"}, stubNotifier{})

	var desc pluginv1.DescribeResponse
	err := wasm.Call(context.Background(), "svidagent.plugin.v1.Plugin/Describe", &pluginv1.DescribeRequest{}, &desc)
	fmt.Println(desc.GetName(), desc.GetServices(), err)
	// Output: notifier-hello [svidagent.plugin.v1.Plugin svidagent.plugin.notifier.v1.Notifier] <nil>
}
