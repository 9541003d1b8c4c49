//go:build !wasip1

package wasm

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/wasmguest"
	"google.golang.org/protobuf/proto"
)

// Serve registers impl as the plugin of this package. This is the stub
// build (GOOS is not wasip1): nothing is exported, and [Call] drives the
// plugin from a test of the plugin's package.
//
// impl implements exactly one of hostapi.Issuer, hostapi.Writer and
// hostapi.Notifier, and optionally sdk.Configurer and io.Closer. If it is
// unusable, or Serve was already called, every Call returns the reason.
func Serve(info sdk.Info, impl any) { _ = wasmguest.Serve(anyKind(info, impl), stubHost) }

// ServeNotifier is [Serve] for a notifier. In a WASM module it links only
// the notifier's code; in this stub build it is the same as Serve.
func ServeNotifier(info sdk.Info, n hostapi.Notifier) {
	_ = wasmguest.Serve(notifier(info, n), stubHost)
}

// ServeWriter is [Serve] for a writer. In a WASM module it links only the
// writer's code; in this stub build it is the same as Serve.
func ServeWriter(info sdk.Info, w hostapi.Writer) { _ = wasmguest.Serve(writer(info, w), stubHost) }

// ServeIssuer is [Serve] for an issuer. In a WASM module it links only the
// issuer's code; in this stub build it is the same as Serve.
func ServeIssuer(info sdk.Info, i hostapi.Issuer) { _ = wasmguest.Serve(issuer(info, i), stubHost) }

// Call drives the served plugin as the agent would, on the host: it
// encodes req into a request envelope for method (e.g.
// "svidagent.plugin.notifier.v1.Notifier/Notify", with or without a
// leading "/"), hands it to the same dispatch the WASM exports use, and
// decodes the answer into resp (which may be nil). A non-OK answer is an
// error whose sdk.CodeOf is the status code. Plugin code sees the
// sdk.Host carried by ctx (set it with sdk.WithHost to fake the agent's
// logging and HTTP); with none, logs are dropped and HTTP is refused.
//
// Call exists only in the stub build, for tests.
func Call(ctx context.Context, method string, req, resp proto.Message) error {
	payload, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	ctx = context.WithValue(ctx, testHostKey{}, sdk.HostFromContext(ctx))
	out := wasmguest.HandleEnvelope(ctx, abi.EncodeRequest(strings.TrimPrefix(method, "/"), payload))
	code, msg, p, err := abi.DecodeResponse(out)
	if err != nil {
		return err
	}
	if code != 0 {
		return sdk.Error(sdk.Code(code), msg)
	}
	if resp != nil {
		return proto.Unmarshal(p, resp)
	}
	return nil
}

type testHostKey struct{}

// stubHost serves the host services from the sdk.Host that Call found in
// its context.
func stubHost(ctx context.Context, method string, req []byte) (uint32, string, []byte) {
	h, _ := ctx.Value(testHostKey{}).(sdk.Host)
	if h == nil {
		h = sdk.HostFromContext(context.Background())
	}
	var (
		out proto.Message
		err error
	)
	switch method {
	case abi.Logger_Log_FullMethodName:
		var r hostv1.LogRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			return uint32(sdk.CodeInvalidArgument), err.Error(), nil
		}
		attrs := make([]any, 0, len(r.GetAttrs()))
		for _, a := range r.GetAttrs() {
			attrs = append(attrs, a)
		}
		h.Log(slog.Level(r.GetLevel()), r.GetMessage(), attrs...)
		out = &hostv1.LogResponse{}
	case abi.HTTP_Request_FullMethodName:
		var r hostv1.HTTPRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			return uint32(sdk.CodeInvalidArgument), err.Error(), nil
		}
		hr := &sdk.HTTPRequest{Method: r.GetMethod(), URL: r.GetUrl(), Header: http.Header{}, Body: r.GetBody(),
			Timeout: time.Duration(r.GetTimeoutMs()) * time.Millisecond}
		for _, hd := range r.GetHeaders() {
			hr.Header.Add(hd.GetName(), hd.GetValue())
		}
		var resp *sdk.HTTPResponse
		resp, err = h.HTTP(ctx, hr)
		if err == nil {
			p := &hostv1.HTTPResponse{Status: int32(resp.StatusCode), Body: resp.Body}
			for name, vs := range resp.Header {
				for _, v := range vs {
					p.Headers = append(p.Headers, &hostv1.Header{Name: name, Value: v})
				}
			}
			out = p
		}
	default:
		return uint32(sdk.CodeUnimplemented), "unknown host method " + method, nil
	}
	if err != nil {
		code := sdk.CodeOf(err)
		if errors.Is(err, sdk.ErrNotAllowed) {
			code = sdk.CodePermissionDenied
		}
		return uint32(code), err.Error(), nil
	}
	b, err := proto.Marshal(out)
	if err != nil {
		return uint32(sdk.CodeInternal), err.Error(), nil
	}
	return 0, "", b
}
