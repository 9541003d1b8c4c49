package adapter_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/inproc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// guestConn is an in-memory Conn that serves calls with the plugin-side
// dispatcher both SDKs use: a real end-to-end loop without a process or a
// WASM runtime.
type guestConn struct{ d *inproc.Plugin }

func (c guestConn) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	code, msg, out := c.d.Handle(ctx, method, b)
	if code != 0 {
		return status.Error(codes.Code(code), msg)
	}
	return proto.Unmarshal(out, resp)
}

func (guestConn) Close() error { return nil }

// recordingNotifier is an SDK notifier with a config.
type recordingNotifier struct {
	mu     sync.Mutex
	url    string
	events []*hostapi.RotationEvent
	closed bool
}

func (n *recordingNotifier) Validate(configJSON []byte) hostapi.FieldErrors {
	var c struct{ URL string }
	var fes hostapi.FieldErrors
	if err := json.Unmarshal(configJSON, &c); err != nil {
		fes.Add("", err.Error())
	} else if !strings.HasPrefix(c.URL, "http") {
		fes.Add("url", "url must be an http or https URL")
	}
	return fes
}

func (n *recordingNotifier) Configure(_ context.Context, configJSON []byte) error {
	var c struct{ URL string }
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return err
	}
	n.mu.Lock()
	n.url = c.URL
	n.mu.Unlock()
	return nil
}

func (n *recordingNotifier) Notify(_ context.Context, ev *hostapi.RotationEvent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, ev)
	return nil
}

func (n *recordingNotifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	return nil
}

func TestEndToEndWithGuestDispatcher(t *testing.T) {
	impl := &recordingNotifier{}
	d, err := inproc.New(sdk.Info{Name: "recorder", Version: "0.0.1"}, impl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.Open(context.Background(), guestConn{d}, adapter.Settings{
		Kind: hostapi.KindNotifier, Name: "rec", ConfigJSON: []byte(`{"url":"ftp://x"}`),
	}); hostapi.AsFieldErrors(err) == nil || hostapi.AsFieldErrors(err)[0].Field != "url" {
		t.Fatalf("Open with a bad url = %v, want a field error for url", err)
	}

	impl = &recordingNotifier{}
	d, err = inproc.New(sdk.Info{Name: "recorder", Version: "0.0.1"}, impl, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := adapter.Open(context.Background(), guestConn{d}, adapter.Settings{
		Kind: hostapi.KindNotifier, Name: "rec", ConfigJSON: []byte(`{"url":"http://hook"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if info := p.Info(); info.Name != "recorder" || info.Service != adapter.ServiceNotifier {
		t.Errorf("Info = %+v", info)
	}
	ev := &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509, Initial: true, Paths: []string{"/out/svid.pem"}}
	if err := p.Notifier().Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	impl.mu.Lock()
	defer impl.mu.Unlock()
	if impl.url != "http://hook" || len(impl.events) != 1 || impl.events[0].Name != "web" || !impl.events[0].Initial || !impl.closed {
		t.Errorf("plugin saw url %q, events %+v, closed %v", impl.url, impl.events, impl.closed)
	}
	// Used as the wrong kind, the same plugin is refused, naming both sides.
	d2, _ := inproc.New(sdk.Info{Name: "recorder"}, &recordingNotifier{}, nil)
	_, err = adapter.Open(context.Background(), guestConn{d2}, adapter.Settings{Kind: hostapi.KindWriter, Name: "rec"})
	if err == nil || !strings.Contains(err.Error(), "svidagent.plugin.writer.v1.Writer") || !strings.Contains(err.Error(), adapter.ServiceNotifier) {
		t.Errorf("a notifier opened as a writer: %v", err)
	}
}
