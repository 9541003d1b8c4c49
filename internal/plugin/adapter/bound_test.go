package adapter_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBoundText(t *testing.T) {
	big := strings.Repeat("E", 4<<20)
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "webhook down: 503", want: "webhook down: 503"},
		{name: "unicode kept", in: "échec ✓", want: "échec ✓"},
		{name: "escape sequence", in: "a\x1b[2J\x1b]0;pwned\x07b", want: `a\x1b[2J\x1b]0;pwned\ab`},
		{name: "newline and tab", in: "a\nb\tc\r", want: `a\nb\tc\r`},
		{name: "DEL and C1", in: "a\x7fb\u009bc", want: `a\x7fb\u009bc`},
		{name: "bidi override", in: "a\u202eb", want: `a\u202eb`},
		{name: "invalid UTF-8", in: "a\xff\xfeb", want: `a\xff\xfeb`},
		{name: "huge", in: big, want: big[:adapter.MaxTextBytes] + fmt.Sprintf("… (%d bytes truncated)", len(big)-adapter.MaxTextBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := adapter.BoundText(tt.in)
			if got != tt.want {
				t.Errorf("BoundText = %.80q (%d bytes), want %.80q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
	// The cap holds whatever the escapes cost, and never splits one.
	got := adapter.BoundText(strings.Repeat("\x1b", 10000))
	if body, _, ok := strings.Cut(got, "…"); !ok || len(body) > adapter.MaxTextBytes || len(body)%4 != 0 {
		t.Errorf("BoundText of 10000 ESC = %.60q… (%d bytes before the marker)", got, len(body))
	}
}

// TestPluginTextIsBounded: an error, a Describe string or a Validate
// problem of many MiB with terminal escapes reaches the host bounded and
// escaped, and an error keeps its gRPC code.
func TestPluginTextIsBounded(t *testing.T) {
	hostile := "\x1b[31m" + strings.Repeat("X", 4<<20)
	// Each plugin string may add MaxTextBytes, its marker and the
	// host's context.
	bounded := func(what, s string, pieces int) {
		t.Helper()
		if len(s) > pieces*adapter.MaxTextBytes+128 || strings.ContainsRune(s, 0x1b) {
			t.Errorf("%s: %d bytes, ESC kept: %v", what, len(s), strings.ContainsRune(s, 0x1b))
		}
	}
	conn := newFakeConn().
		handle(adapter.MethodDescribe, func(context.Context, []byte) ([]byte, error) {
			return reply(&pluginv1.DescribeResponse{Name: hostile, Version: hostile, Services: notifierV1, Capabilities: []string{hostile}})
		}).
		handle(adapter.MethodValidate, func(context.Context, []byte) ([]byte, error) {
			return reply(&pluginv1.ValidateResponse{Problems: []*pluginv1.FieldError{{Field: hostile, Message: hostile}}})
		}).
		handle(adapter.MethodConfigure, ok).
		handle(adapter.MethodClose, ok).
		handle(adapter.MethodNotify, func(context.Context, []byte) ([]byte, error) {
			return nil, status.Error(codes.Unavailable, hostile)
		})
	p, err := adapter.Negotiate(context.Background(), conn, adapter.Settings{Kind: hostapi.KindNotifier, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info := p.Info()
	bounded("name", info.Name, 1)
	bounded("version", info.Version, 1)
	bounded("capability", info.Capabilities[0], 1)
	fes := hostapi.AsFieldErrors(p.Validate(context.Background(), nil))
	if fes == nil {
		t.Fatal("Validate: no field errors")
	}
	bounded("problem", fes.Error(), 2)

	err = p.Notifier().Notify(context.Background(), &hostapi.RotationEvent{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Notify: code %v, want Unavailable kept", status.Code(err))
	}
	bounded("error", err.Error(), 1)
	bounded("status", p.Status().LastError, 1)
	if !strings.Contains(err.Error(), `\x1b[31mXXX`) || !strings.Contains(err.Error(), "bytes truncated)") {
		t.Errorf("Notify: %.200q, want the escaped start and the truncation marker", err)
	}
}

func BenchmarkBoundText(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   string
	}{
		{"clean 40B", "notifying: webhook answered 503 Service"},
		{"escapes 40B", "notifying: \x1b[31mwebhook\x1b[0m answered 503"},
		{"huge 4MiB", strings.Repeat("E", 4<<20)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = adapter.BoundText(bc.in)
			}
		})
	}
}
