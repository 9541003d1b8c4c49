//go:build !wasip1

package goplugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/dispatch"
	"github.com/svidagent/svidagent/sdk/internal/guest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// PluginName is the one entry of the go-plugin plugin set both sides use
// (abi.GoPluginName).
const PluginName = abi.GoPluginName

// Handshake returns the go-plugin handshake of host API v1: protocol
// version 1 and the magic cookie SVIDAGENT_PLUGIN=v1 (hostapi/ABI.md §8).
// The host uses the same value; it is exported for that reason and for
// plugin authors who serve with go-plugin directly.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  abi.GoPluginProtocolVersion,
		MagicCookieKey:   abi.GoPluginMagicCookieKey,
		MagicCookieValue: abi.GoPluginMagicCookieValue,
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
		GRPCServer:      newServer,
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
	d, err := dispatch.New(info, impl, host.call)
	if err != nil {
		return nil, fmt.Errorf("serving plugin %q: %w", info.Name, err)
	}
	return &grpcPlugin{d: d, host: host}, nil
}

// goPluginStreams is the number of streams go-plugin keeps open on the
// plugin's server for the plugin's life: the broker's and stdio's. Each
// holds a stream worker.
const goPluginStreams = 2

// newServer is the plugin's gRPC server: go-plugin's options (the
// AutoMTLS credentials) and two more for the call path. rawCodec lets
// the host API services be served raw (see rawService). Stream workers run
// each call on a long-lived goroutine whose stack has grown already,
// instead of on a new goroutine that grows its stack on every call; when
// all are busy, gRPC falls back to a new goroutine. There is one worker
// per CPU besides those go-plugin's own streams hold.
func newServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.NumStreamWorkers(uint32(goPluginStreams+runtime.GOMAXPROCS(0))),
	)
	return grpc.NewServer(opts...)
}

// GRPCServer registers svidagent.plugin.v1.Plugin and the kind's service,
// served raw.
func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.host.setBroker(broker)
	s.RegisterService(p.rawService(&pluginv1.Plugin_ServiceDesc), nil)
	switch p.d.Kind() {
	case hostapi.KindIssuer:
		s.RegisterService(p.rawService(&issuerv1.Issuer_ServiceDesc), nil)
	case hostapi.KindWriter:
		s.RegisterService(p.rawService(&writerv1.Writer_ServiceDesc), nil)
	case hostapi.KindNotifier:
		s.RegisterService(p.rawService(&notifierv1.Notifier_ServiceDesc), nil)
	}
	return nil
}

// GRPCClient is the host's side; a plugin never dispenses itself.
func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the svidagent plugin has no client side in the plugin process")
}

// rawService returns a copy of the generated sd whose methods hand the
// request's protobuf bytes, as they came off the wire, to the Dispatcher
// and send its response bytes back as they are. The Dispatcher decodes a
// request once; a typed gRPC handler would decode it, and it would have to
// be encoded again for the Dispatcher. The copy keeps sd's names and proto
// file, so that go-plugin's reflection service still describes it.
func (p *grpcPlugin) rawService(sd *grpc.ServiceDesc) *grpc.ServiceDesc {
	raw := *sd
	raw.HandlerType = nil
	raw.Methods = make([]grpc.MethodDesc, len(sd.Methods))
	for i, m := range sd.Methods {
		method := sd.ServiceName + "/" + m.MethodName
		raw.Methods[i] = grpc.MethodDesc{
			MethodName: m.MethodName,
			Handler: func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawMsg)
				if err := dec(in); err != nil {
					return nil, err
				}
				if interceptor == nil {
					return p.serve(ctx, method, *in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + method}, func(ctx context.Context, req any) (any, error) {
					return p.serve(ctx, method, *req.(*rawMsg))
				})
			},
		}
	}
	return &raw
}

// serve serves one call through the Dispatcher. A Describe request also
// carries the broker id of the host services.
func (p *grpcPlugin) serve(ctx context.Context, method string, req []byte) (*rawMsg, error) {
	if method == abi.Method(abi.Plugin_Describe_FullMethodName) {
		d := &pluginv1.DescribeRequest{}
		if err := proto.Unmarshal(req, d); err == nil {
			p.host.setID(d.GetHostBrokerId())
			// Dial now: go-plugin's broker keeps the host's connection
			// details for 5 s only, so a first host call (a log line,
			// an HTTP request) made later than that would fail. An error
			// here leaves the dial to the first host call, which reports it.
			if d.GetHostBrokerId() != 0 {
				_, _ = p.host.client()
			}
		} // else the Dispatcher answers INVALID_ARGUMENT
	}
	code, msg, out := p.d.Handle(ctx, method, req)
	if code != 0 {
		return nil, status.Error(codes.Code(code), msg)
	}
	resp := rawMsg(out)
	return &resp, nil
}

// hostConn reaches the host services through the go-plugin broker: the
// host serves them on the broker id it sends in DescribeRequest, and the
// connection is dialed when that Describe arrives.
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
	if err := conn.Invoke(ctx, method, &in, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		st := status.Convert(err)
		return uint32(st.Code()), st.Message(), nil
	}
	return 0, "", out
}

// rawMsg is a message already in protobuf binary form.
type rawMsg []byte

// rawCodec is the codec of the plugin's server and of its host calls. It
// passes rawMsg through untouched (the Dispatcher and the guest package
// encode and decode those) and encodes every other message (go-plugin's
// health, broker, controller and stdio services) with gRPC's protobuf
// codec, under the ordinary "proto" name.
type rawCodec struct{}

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMsg); ok {
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return protoCodec.Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMsg); ok {
		*m = data.Materialize()
		return nil
	}
	return protoCodec.Unmarshal(data, v)
}

func (rawCodec) Name() string { return grpcproto.Name }
