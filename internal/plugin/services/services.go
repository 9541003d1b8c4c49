package services

import (
	"context"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Full method and service names of the host services.
const (
	MethodLog         = abi.Logger_Log_FullMethodName
	MethodHTTPRequest = abi.HTTP_Request_FullMethodName
	ServiceLogger     = abi.Logger_ServiceName
	ServiceHTTP       = abi.HTTP_ServiceName
)

// Services bundles the host services one plugin was granted and dispatches
// raw calls to them. It exists so that the WASM runtime can serve its
// `call` import; it is not part of the public API.
type Services struct {
	// Logger is always granted. Required.
	Logger *Logger
	// HTTP is granted to plugins with an allow { hosts = [...] } block;
	// nil otherwise, and calls answer PERMISSION_DENIED.
	HTTP *HTTP
	// Metrics lets the plugin export counters. Granted when set; nil
	// otherwise, and calls answer UNIMPLEMENTED.
	Metrics *Metrics
}

// Names returns the fully-qualified names of the granted services, for
// DescribeRequest.host_services.
func (s *Services) Names() []string {
	names := []string{ServiceLogger}
	if s.HTTP != nil {
		names = append(names, ServiceHTTP)
	}
	if s.Metrics != nil {
		names = append(names, ServiceMetrics)
	}
	return names
}

// Handle calls method, in gRPC's full form ("/svidagent.host.v1.HTTP/Request"),
// with the protobuf request payload, and returns the status code, message
// and protobuf response payload of the answer.
func (s *Services) Handle(ctx context.Context, method string, payload []byte) (code uint32, msg string, resp []byte) {
	var (
		out proto.Message
		err error
	)
	switch method {
	case MethodLog:
		req := &hostv1.LogRequest{}
		if err := proto.Unmarshal(payload, req); err != nil {
			return uint32(codes.InvalidArgument), "decoding LogRequest: " + err.Error(), nil
		}
		out, err = s.Logger.Log(ctx, req)
	case MethodHTTPRequest:
		if s.HTTP == nil {
			return uint32(codes.PermissionDenied), "the HTTP host service is not granted to this plugin; add an allow { hosts = [...] } block to its config", nil
		}
		req := &hostv1.HTTPRequest{}
		if err := proto.Unmarshal(payload, req); err != nil {
			return uint32(codes.InvalidArgument), "decoding HTTPRequest: " + err.Error(), nil
		}
		out, err = s.HTTP.Request(ctx, req)
	case MethodMetricsCounter:
		if s.Metrics == nil {
			return uint32(codes.Unimplemented), "the Metrics host service is not offered by this agent", nil
		}
		req := &hostv1.AddCounter{}
		if err := proto.Unmarshal(payload, req); err != nil {
			return uint32(codes.InvalidArgument), "decoding AddCounter: " + err.Error(), nil
		}
		out, err = s.Metrics.Counter(ctx, req)
	default:
		return uint32(codes.Unimplemented), "unknown host method " + method, nil
	}
	if err != nil {
		st := status.Convert(err)
		return uint32(st.Code()), st.Message(), nil
	}
	b, err := proto.Marshal(out)
	if err != nil {
		return uint32(codes.Internal), "encoding response: " + err.Error(), nil
	}
	return 0, "", b
}

// Close flushes the Logger's drop summary and closes idle HTTP
// connections.
func (s *Services) Close(ctx context.Context) {
	s.Logger.Flush(ctx)
	if s.HTTP != nil {
		s.HTTP.Close()
	}
}
