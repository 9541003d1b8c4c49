package adapter

import (
	"context"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"google.golang.org/protobuf/proto"
)

// Conn is a connection to one plugin, whatever its runtime. Both runtimes
// implement it.
//
// Invoke calls method, in gRPC's full form
// (abi.Notifier_Notify_FullMethodName), with req and fills resp.
// Errors are gRPC status errors (google.golang.org/grpc/status) with the
// codes listed in hostapi/ABI.md, so callers branch on status.Code(err)
// alike for both runtimes. Invoke honours ctx's deadline. A runtime that
// recovers from a crash (a fresh WASM instance, a restarted process) replays
// the last successful Describe and Configure to the new instance before
// serving the call, so recovery is invisible to the caller.
//
// Close releases the plugin (it does not call the plugin's Close method:
// the adapter does that first). It is idempotent.
type Conn interface {
	Invoke(ctx context.Context, method string, req, resp proto.Message) error
	Close() error
}

// Full method names of host API v1: the generated names of hostapi/v1/abi,
// the ones the guest SDK dispatches on.
const (
	MethodDescribe  = abi.Plugin_Describe_FullMethodName
	MethodValidate  = abi.Plugin_Validate_FullMethodName
	MethodConfigure = abi.Plugin_Configure_FullMethodName
	MethodClose     = abi.Plugin_Close_FullMethodName
	MethodIssue     = abi.Issuer_Issue_FullMethodName
	MethodWrite     = abi.Writer_Write_FullMethodName
	MethodNotify    = abi.Notifier_Notify_FullMethodName
)

// Service names of host API v1, as Describe lists them.
const (
	ServicePlugin   = abi.Plugin_ServiceName
	ServiceIssuer   = abi.Issuer_ServiceName
	ServiceWriter   = abi.Writer_ServiceName
	ServiceNotifier = abi.Notifier_ServiceName
	ServiceLogger   = abi.Logger_ServiceName
	ServiceHTTP     = abi.HTTP_ServiceName
)

// PathMapper is implemented by a Conn whose plugin reports paths in a
// space of its own: a WASM writer sees its write_dir as /out. A writer's
// WriteResponse.paths pass through HostPaths before anything else sees
// them (notifiers, /status, logs); an error fails the Write.
type PathMapper interface {
	HostPaths(paths []string) ([]string, error)
}
