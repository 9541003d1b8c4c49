package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/guest"
	"github.com/svidagent/svidagent/sdk/internal/lite"
)

// hostImpl is the sdk.Host plugin code gets, over a HostCaller.
type hostImpl struct {
	call guest.HostCaller
	// ctx is the call's context, without its cancellation: Log passes it
	// to the HostCaller, so that a line logged as a call ends still goes
	// out.
	ctx context.Context
}

var _ sdk.Host = hostImpl{}

// Log implements sdk.Host. Attributes are flattened to strings the way
// slog would render them; groups become dotted keys.
func (h hostImpl) Log(level slog.Level, msg string, attrs ...any) {
	r := slog.NewRecord(time.Time{}, level, msg, 0)
	r.Add(attrs...)
	var kv []string
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, "", a)
		return true
	})
	guest.Log(h.ctx, h.call, int32(level), msg, kv)
}

func appendAttr(kv []string, prefix string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return kv
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			kv = appendAttr(kv, p, g)
		}
		return kv
	}
	return append(kv, prefix+a.Key, a.Value.String())
}

// HTTP implements sdk.Host.
func (h hostImpl) HTTP(ctx context.Context, req *sdk.HTTPRequest) (*sdk.HTTPResponse, error) {
	resp, err := guest.HTTP(ctx, h.call, req.Method, req.URL, req.Header, req.Body, req.Timeout)
	if err != nil {
		return nil, err
	}
	hr := &sdk.HTTPResponse{StatusCode: int(resp.Status), Header: http.Header{}, Body: resp.Body}
	for _, hd := range resp.Headers {
		hr.Header.Add(hd.Name, hd.Value)
	}
	return hr, nil
}

// Counter adds delta to the plugin's counter name with labels, through
// svidagent.host.v1.Metrics/Counter; the agent exports it as
// svidagent_plugin_<plugin>_<name>. It is not (yet) part of sdk.Host:
// plugin code reaches it by asserting the host from the context to
// interface{ Counter(context.Context, string, string, map[string]string, float64) error }.
func (h hostImpl) Counter(ctx context.Context, name, help string, labels map[string]string, delta float64) error {
	b, err := (&lite.AddCounter{Name: name, Help: help, Labels: labels, Delta: delta}).Marshal()
	if err != nil {
		return fmt.Errorf("encoding the counter: %w", err)
	}
	if code, msg, _ := h.call(ctx, abi.Metrics_Counter_FullMethodName, b); code != 0 {
		return sdk.Error(sdk.Code(code), "adding to counter "+name+" through the host: "+msg)
	}
	return nil
}
