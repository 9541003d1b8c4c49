package goplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestHandshake(t *testing.T) {
	h := Handshake()
	if h.ProtocolVersion != 1 || h.MagicCookieKey != "SVIDAGENT_PLUGIN" || h.MagicCookieValue != "v1" {
		t.Errorf("Handshake() = %+v, want protocol 1 and SVIDAGENT_PLUGIN=v1 (hostapi/ABI.md §8)", h)
	}
}

func TestLoggerWritesHCLogJSON(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "trace"},
		{slog.LevelDebug, "debug"},
		{slog.LevelInfo, "info"},
		{slog.LevelWarn, "warn"},
		{slog.LevelError, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var buf bytes.Buffer
			newLogger(&buf, slog.LevelDebug-4).Log(t.Context(), tt.level, "hello", "k", "v")
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatalf("decoding %q: %v", buf.String(), err)
			}
			if m["@level"] != tt.want || m["@message"] != "hello" || m["@timestamp"] == nil || m["k"] != "v" {
				t.Errorf("logged %v, want @level=%s @message=hello @timestamp and k=v", m, tt.want)
			}
		})
	}
}

func TestNewGRPCPluginRejectsBadImpl(t *testing.T) {
	if _, err := newGRPCPlugin(sdkInfo("x"), struct{}{}); err == nil {
		t.Error("a value of no plugin kind was accepted")
	}
}

func sdkInfo(name string) sdk.Info { return sdk.Info{Name: name} }

// recordingNotifier hands each event it is notified of to got.
type recordingNotifier struct{ got chan *hostapi.RotationEvent }

func (n recordingNotifier) Notify(_ context.Context, ev *hostapi.RotationEvent) error {
	n.got <- ev
	if ev.Name == "fail" {
		return sdk.Error(sdk.CodeFailedPrecondition, "failing as asked")
	}
	return nil
}

// TestServerServesRaw serves a notifier on the plugin's gRPC server (as
// newServer builds it, over a unix socket, without TLS) and calls it as the
// host does: with typed requests, and with bytes that are no request.
func TestServerServesRaw(t *testing.T) {
	n := recordingNotifier{got: make(chan *hostapi.RotationEvent, 1)}
	p, err := newGRPCPlugin(sdk.Info{Name: "raw", Version: "0.0.1"}, n)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(nil)
	if err := p.GRPCServer(nil, s); err != nil {
		t.Fatal(err)
	}
	// A service of go-plugin's own goes through the protobuf fallback.
	healthpb.RegisterHealthServer(s, health.NewServer())
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "plugin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := t.Context()

	desc := &pluginv1.DescribeResponse{}
	if err := conn.Invoke(ctx, abi.Plugin_Describe_FullMethodName, &pluginv1.DescribeRequest{HostBrokerId: 7}, desc); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if desc.GetName() != "raw" || len(desc.GetServices()) != 2 || desc.GetServices()[1] != abi.Notifier_ServiceName {
		t.Errorf("Describe = %v", desc)
	}
	p.host.mu.Lock()
	id := p.host.id
	p.host.mu.Unlock()
	if id != 7 {
		t.Errorf("host broker id = %d after Describe, want 7", id)
	}

	if err := conn.Invoke(ctx, abi.Plugin_Configure_FullMethodName, &pluginv1.ConfigureRequest{ConfigJson: []byte("{}")}, &pluginv1.ConfigureResponse{}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	req := &notifierv1.NotifyRequest{Name: "web", Reason: 1}
	for i := range 32 {
		req.Paths = append(req.Paths, fmt.Sprintf("/%03d/%s", i, strings.Repeat("p", 121)))
	}
	if err := conn.Invoke(ctx, abi.Notifier_Notify_FullMethodName, req, &notifierv1.NotifyResponse{}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if ev := <-n.got; ev.Name != "web" || ev.Reason != 1 || !slices.Equal(ev.Paths, req.Paths) {
		t.Errorf("the plugin got %+v, want the request's name, reason and 32 paths", ev)
	}

	req.Name = "fail"
	err = conn.Invoke(ctx, abi.Notifier_Notify_FullMethodName, req, &notifierv1.NotifyResponse{})
	<-n.got
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "failing as asked") {
		t.Errorf("Notify of a failing plugin = %v, want FAILED_PRECONDITION with its message", err)
	}

	// 0x0a 0x05 announces a 5-byte name but the message ends.
	garbage, answer := rawMsg{0x0a, 0x05, 'x'}, rawMsg(nil)
	err = conn.Invoke(ctx, abi.Notifier_Notify_FullMethodName, &garbage, &answer, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Notify with a truncated request = %v, want INVALID_ARGUMENT", err)
	}

	err = conn.Invoke(ctx, abi.Issuer_Issue_FullMethodName, &notifierv1.NotifyRequest{}, &notifierv1.NotifyResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Issue on a notifier = %v, want UNIMPLEMENTED", err)
	}

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check = %v, %v; want SERVING", hc, err)
	}
}

func TestRawCodec(t *testing.T) {
	c := rawCodec{}
	in := rawMsg("payload")
	b, err := c.Marshal(&in)
	if err != nil || string(b.Materialize()) != "payload" {
		t.Fatalf("Marshal(raw) = %q, %v", b.Materialize(), err)
	}
	var out rawMsg
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer("answer")}, &out); err != nil || string(out) != "answer" {
		t.Fatalf("Unmarshal(raw) = %q, %v", out, err)
	}
	msg := &pluginv1.ConfigureRequest{Instance: "a"}
	b, err = c.Marshal(msg)
	if err != nil {
		t.Fatalf("Marshal(proto): %v", err)
	}
	got := &pluginv1.ConfigureRequest{}
	if err := c.Unmarshal(b, got); err != nil || !proto.Equal(got, msg) {
		t.Fatalf("Unmarshal(proto) = %v, %v; want %v", got, err, msg)
	}
	if c.Name() != "proto" {
		t.Errorf("Name() = %q", c.Name())
	}
}
