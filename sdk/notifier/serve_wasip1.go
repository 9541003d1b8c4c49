//go:build wasip1

package notifier

import (
	"context"
	"fmt"
	"strconv"

	"github.com/svidagent/svidagent/sdk/internal/guest"
	"github.com/svidagent/svidagent/sdk/internal/wasmguest"
)

// Serve registers n as the notifier this module serves. Call it once,
// from an init function of package main: with -buildmode=c-shared, Go
// runs package initialisation in _initialize and never calls main. If n is
// unusable, Serve logs why through the agent at error level and every call
// answers FAILED_PRECONDITION with the reason.
func Serve(info Info, n Notifier) {
	err := wasmguest.Serve(func(h guest.HostCaller) (*guest.Dispatcher, error) {
		return guest.NewNotifier(info, n, h, withCaller)
	}, wasmguest.HostCall)
	if err != nil {
		wasmguest.LogError("svidagent plugin: " + err.Error())
	}
}

// Main does nothing in a WebAssembly module, where main never runs; it is
// there so that the same main function builds both ways.
func Main() {}

// callerKey carries the host of a call in its context.
type callerKey struct{}

type caller struct {
	call   guest.HostCaller
	logCtx context.Context
}

// withCaller is the guest.WithHost of this package.
func withCaller(ctx context.Context, call guest.HostCaller, logCtx context.Context) context.Context {
	if call == nil {
		return context.WithValue(ctx, callerKey{}, caller{})
	}
	return context.WithValue(ctx, callerKey{}, caller{call: call, logCtx: logCtx})
}

func callerFrom(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok && c.call != nil
}

func logTo(ctx context.Context, level Level, msg string, kv []any) {
	if c, ok := callerFrom(ctx); ok {
		guest.Log(c.logCtx, c.call, int32(level), msg, attrs(kv))
	}
}

func httpTo(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
	c, ok := callerFrom(ctx)
	if !ok {
		return nil, Errorf(CodePermissionDenied, "making an HTTP request: no agent in the context: %w", ErrNotAllowed)
	}
	resp, err := guest.HTTP(ctx, c.call, req.Method, req.URL, req.Header, req.Body, req.Timeout)
	if err != nil {
		return nil, err
	}
	out := &HTTPResponse{StatusCode: int(resp.Status), Header: Header{}, Body: resp.Body}
	for _, h := range resp.Headers {
		out.Header[h.Name] = append(out.Header[h.Name], h.Value)
	}
	return out, nil
}

// attrs renders kv as alternating key and value strings, as slog would
// (a machine build logs through slog itself; TestModule checks this one).
func attrs(kv []any) []string {
	out := make([]string, 0, len(kv)+len(kv)%2)
	for i := 0; i < len(kv); i++ {
		key, ok := kv[i].(string)
		if !ok || i+1 == len(kv) {
			out = append(out, "!BADKEY", render(kv[i]))
			continue
		}
		out = append(out, key, render(kv[i+1]))
		i++
	}
	return out
}

// render is fmt.Sprint(v) without fmt for the values logs carry most:
// every function call of a guest costs it a round trip out of wazero's
// machine code (the deadline check), and fmt makes dozens.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}
