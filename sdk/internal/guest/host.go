package guest

import (
	"context"
	"sort"
	"time"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk/core"
	"github.com/svidagent/svidagent/sdk/internal/lite"
)

// The host services as plain calls over a HostCaller, shared by the
// sdk.Host of sdk/internal/dispatch and by sdk/notifier.

// Log writes a line to the agent's log: level is slog's, kv alternating
// keys and values already rendered. Logging never fails the plugin: a
// refused or dropped line is the host's business.
func Log(ctx context.Context, call HostCaller, level int32, msg string, kv []string) {
	b, err := (&lite.LogRequest{Level: level, Message: msg, Attrs: kv}).Marshal()
	if err != nil {
		return
	}
	call(ctx, abi.Logger_Log_FullMethodName, b)
}

// HTTP makes an HTTP request through the host. method defaults to GET;
// header names are sent sorted, so that a request encodes the same way
// every time. A refused request is an error with the host's code
// (PERMISSION_DENIED matches core.ErrNotAllowed).
func HTTP(ctx context.Context, call HostCaller, method, url string, header map[string][]string, body []byte, timeout time.Duration) (*lite.HTTPResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, core.Errorf(core.CodeOf(err), "making an HTTP request: %w", err)
	}
	if method == "" {
		method = "GET"
	}
	p := &lite.HTTPRequest{Method: method, URL: url, Body: body, TimeoutMS: timeout.Milliseconds()}
	if timeout > 0 && p.TimeoutMS == 0 {
		p.TimeoutMS = 1
	}
	names := make([]string, 0, len(header))
	for name := range header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range header[name] {
			p.Headers = append(p.Headers, lite.Header{Name: name, Value: v})
		}
	}
	b, err := p.Marshal()
	if err != nil {
		return nil, core.Errorf(core.CodeInternal, "encoding the HTTP request: %w", err)
	}
	code, msg, out := call(ctx, abi.HTTP_Request_FullMethodName, b)
	if code != 0 {
		return nil, core.Error(core.Code(code), "making an HTTP request through the host: "+msg)
	}
	var resp lite.HTTPResponse
	if err := resp.Unmarshal(out); err != nil {
		return nil, core.Errorf(core.CodeInternal, "decoding the host's HTTP response: %w", err)
	}
	return &resp, nil
}
