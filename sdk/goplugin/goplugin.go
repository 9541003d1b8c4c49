//go:build !wasip1

package goplugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/guest"
	"github.com/svidagent/svidagent/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// PluginName is the one entry of the go-plugin plugin set both sides use.
const PluginName = "svidagent"

// Handshake returns the go-plugin handshake of host API v1: protocol
// version 1 and the magic cookie SVIDAGENT_PLUGIN=v1 (hostapi/ABI.md §8).
// The host uses the same value; it is exported for that reason and for
// plugin authors who serve with go-plugin directly.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  1,
		MagicCookieKey:   "SVIDAGENT_PLUGIN",
		MagicCookieValue: "v1",
	}
}

// hostCallTimeout bounds a host service call whose context has no deadline
// (sdk.Host.Log has none).
const hostCallTimeout = 10 * time.Second

// Serve serves impl as a svidagent plugin over go-plugin (gRPC only) and
// never returns. Call it from the plugin's main. impl implements exactly
// one of hostapi.Issuer, hostapi.Writer and hostapi.Notifier, and may
// implement sdk.Configurer and io.Closer.
//
// When impl is unusable (no kind, several kinds, no name), Serve reports why
// on standard error, as a JSON log line the host re-emits, and exits with
// status 1. Run by hand instead of by the agent, the binary says so and
// exits with status 1.
func Serve(info sdk.Info, impl any) {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       info.Name,
		Output:     os.Stderr, // the real stderr: go-plugin redirects os.Stderr later
		JSONFormat: true,
		Level:      hclog.Info,
	})
	p, err := newGRPCPlugin(info, impl)
	if err != nil {
		logger.Error(err.Error())
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: p},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
	os.Exit(0)
}

// grpcPlugin is the plugin side of the go-plugin plugin "svidagent".
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	d    *guest.Dispatcher
	host *hostConn
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func newGRPCPlugin(info sdk.Info, impl any) (*grpcPlugin, error) {
	host := &hostConn{}
	d, err := guest.New(info, impl, host.call)
	if err != nil {
		return nil, fmt.Errorf("serving plugin %q: %w", info.Name, err)
	}
	return &grpcPlugin{d: d, host: host}, nil
}

// GRPCServer registers svidagent.plugin.v1.Plugin and the kind's service.
func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.host.setBroker(broker)
	pluginv1.RegisterPluginServer(s, pluginServer{p: p})
	switch p.d.Kind() {
	case hostapi.KindIssuer:
		issuerv1.RegisterIssuerServer(s, issuerServer{p: p})
	case hostapi.KindWriter:
		writerv1.RegisterWriterServer(s, writerServer{p: p})
	case hostapi.KindNotifier:
		notifierv1.RegisterNotifierServer(s, notifierServer{p: p})
	}
	return nil
}

// GRPCClient is the host's side; a plugin never dispenses itself.
func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the svidagent plugin has no client side in the plugin process")
}

// call serves one call through the Dispatcher: the typed request is
// encoded again, so that both SDKs share one dispatch path.
func (p *grpcPlugin) call(ctx context.Context, method string, req, resp proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.Internal, "encoding the %s request: %v", method, err)
	}
	code, msg, out := p.d.Handle(ctx, method, b)
	if code != 0 {
		return status.Error(codes.Code(code), msg)
	}
	if err := proto.Unmarshal(out, resp); err != nil {
		return status.Errorf(codes.Internal, "decoding the plugin's %s response: %v", method, err)
	}
	return nil
}

type pluginServer struct {
	pluginv1.UnimplementedPluginServer
	p *grpcPlugin
}

func (s pluginServer) Describe(ctx context.Context, req *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	s.p.host.setID(req.GetHostBrokerId())
	resp := &pluginv1.DescribeResponse{}
	return resp, s.p.call(ctx, guest.MethodDescribe, req, resp)
}

func (s pluginServer) Validate(ctx context.Context, req *pluginv1.ValidateRequest) (*pluginv1.ValidateResponse, error) {
	resp := &pluginv1.ValidateResponse{}
	return resp, s.p.call(ctx, guest.MethodValidate, req, resp)
}

func (s pluginServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	resp := &pluginv1.ConfigureResponse{}
	return resp, s.p.call(ctx, guest.MethodConfigure, req, resp)
}

func (s pluginServer) Close(ctx context.Context, req *pluginv1.CloseRequest) (*pluginv1.CloseResponse, error) {
	resp := &pluginv1.CloseResponse{}
	return resp, s.p.call(ctx, guest.MethodClose, req, resp)
}

type issuerServer struct {
	issuerv1.UnimplementedIssuerServer
	p *grpcPlugin
}

func (s issuerServer) Issue(ctx context.Context, req *issuerv1.IssueRequest) (*issuerv1.IssueResponse, error) {
	resp := &issuerv1.IssueResponse{}
	return resp, s.p.call(ctx, guest.MethodIssue, req, resp)
}

type writerServer struct {
	writerv1.UnimplementedWriterServer
	p *grpcPlugin
}

func (s writerServer) Write(ctx context.Context, req *writerv1.WriteRequest) (*writerv1.WriteResponse, error) {
	resp := &writerv1.WriteResponse{}
	return resp, s.p.call(ctx, guest.MethodWrite, req, resp)
}

type notifierServer struct {
	notifierv1.UnimplementedNotifierServer
	p *grpcPlugin
}

func (s notifierServer) Notify(ctx context.Context, req *notifierv1.NotifyRequest) (*notifierv1.NotifyResponse, error) {
	resp := &notifierv1.NotifyResponse{}
	return resp, s.p.call(ctx, guest.MethodNotify, req, resp)
}

// hostConn reaches the host services through the go-plugin broker: the
// host serves them on the broker id it sends in DescribeRequest, and the
// connection is dialed on the first host call.
type hostConn struct {
	mu     sync.Mutex
	broker *plugin.GRPCBroker
	id     uint32
	conn   *grpc.ClientConn
}

func (h *hostConn) setBroker(b *plugin.GRPCBroker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broker = b
}

// setID records the broker id of the host services; a new id drops the
// connection to the old one.
func (h *hostConn) setID(id uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id == h.id {
		return
	}
	if h.conn != nil {
		_ = h.conn.Close()
		h.conn = nil
	}
	h.id = id
}

func (h *hostConn) client() (*grpc.ClientConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		return h.conn, nil
	}
	if h.broker == nil || h.id == 0 {
		return nil, errors.New("the host has not offered its services (no broker id in DescribeRequest)")
	}
	conn, err := h.broker.Dial(h.id)
	if err != nil {
		return nil, fmt.Errorf("dialing the host services on broker id %d: %w", h.id, err)
	}
	h.conn = conn
	return conn, nil
}

// call implements guest.HostCaller.
func (h *hostConn) call(ctx context.Context, method string, req []byte) (uint32, string, []byte) {
	conn, err := h.client()
	if err != nil {
		return uint32(codes.Unavailable), "calling the host: " + err.Error(), nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hostCallTimeout)
		defer cancel()
	}
	in, out := rawMsg(req), rawMsg(nil)
	if err := conn.Invoke(ctx, method, &in, &out, grpc.ForceCodec(rawCodec{})); err != nil {
		st := status.Convert(err)
		return uint32(st.Code()), st.Message(), nil
	}
	return 0, "", out
}

// rawMsg is a message already in protobuf binary form.
type rawMsg []byte

// rawCodec passes rawMsg through untouched; the host calls are encoded by
// the guest package already. It names itself "proto" so that the wire
// content type is the ordinary one.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(*rawMsg)
	if !ok {
		return nil, fmt.Errorf("encoding a host call: unexpected message type %T", v)
	}
	return *m, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("decoding a host call: unexpected message type %T", v)
	}
	*m = append((*m)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
