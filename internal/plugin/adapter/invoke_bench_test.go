package adapter_test

import (
	"context"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/inproc"
)

// nopNotifier is a notifier that does nothing: the benchmark measures the
// call path, not the plugin.
type nopNotifier struct{}

func (nopNotifier) Validate([]byte) hostapi.FieldErrors                  { return nil }
func (nopNotifier) Configure(context.Context, []byte) error              { return nil }
func (nopNotifier) Notify(context.Context, *hostapi.RotationEvent) error { return nil }
func (nopNotifier) Close() error                                         { return nil }

// BenchmarkInvokeNotify is the per-runtime plugin call overhead with a
// 4 KiB payload (32 paths of 126 bytes, as internal/plugin/subproc's
// benchmark), for the in-process cases; internal/plugin/wasmrt and
// internal/plugin/subproc have the same benchmark for their runtimes.
//
// builtin: a built-in notifier, called as the core calls it (an interface
// call). adapter: the same notifier behind the adapter adapter and the
// plugin-side dispatcher both SDKs use, in memory: the protobuf
// conversion and marshalling both ways that every external plugin pays,
// without a runtime.
func BenchmarkInvokeNotify(b *testing.B) {
	ev := &hostapi.RotationEvent{Name: "web", Reason: hostapi.ChangedX509}
	for range 32 {
		ev.Paths = append(ev.Paths, "/"+strings.Repeat("p", 125))
	}
	ctx := context.Background()
	b.Run("builtin", func(b *testing.B) {
		var n hostapi.Notifier = nopNotifier{}
		b.ReportAllocs()
		for b.Loop() {
			if err := n.Notify(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("adapter", func(b *testing.B) {
		d, err := inproc.New(sdk.Info{Name: "nop", Version: "0.0.1"}, nopNotifier{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		p, err := adapter.Open(ctx, guestConn{d}, adapter.Settings{Kind: hostapi.KindNotifier, Name: "nop", ConfigJSON: []byte(`{}`)})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		n := p.Notifier()
		b.ReportAllocs()
		for b.Loop() {
			if err := n.Notify(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
