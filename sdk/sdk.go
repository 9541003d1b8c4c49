package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/svidagent/svidagent/sdk/core"
)

// Info describes a plugin to the agent: it is the plugin's answer to
// Describe. See [core.Info] for its fields.
type Info = core.Info

// Configurer is implemented by plugins that take configuration: the plugin
// block's config {} body, as JSON.
//
// Validate reports problems a user can act on, without applying anything;
// Field names the attribute ("url", "headers.x-token"). Configure applies a
// config that passed Validate; it may be called again with a new config and
// must then behave as if only the new one had been applied. A plugin that
// implements Configurer is not called for its kind's method until Configure
// succeeded. Configure is never concurrent with other calls of the plugin.
type Configurer = core.Configurer

// Host is what the agent offers a plugin: logging and, if the plugin's
// config grants it (allow { hosts = [...] }), HTTP. Plugin code gets it
// from the context of every call with [HostFromContext].
type Host interface {
	// Log writes to the agent's log at level, tagged with the plugin.
	// attrs are alternating keys and values, or slog.Attr, as for
	// slog.Logger.Log. The host rate-limits logging; Log never fails.
	Log(level slog.Level, msg string, attrs ...any)
	// HTTP makes req on the plugin's behalf, to allowed hosts only. A
	// host the plugin may not reach (or a plugin without the HTTP grant)
	// gives an error that matches ErrNotAllowed with errors.Is. A non-2xx
	// status is not an error.
	HTTP(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error)
}

// HTTPRequest is an HTTP request made through the host.
type HTTPRequest struct {
	// Method is the HTTP method. Default: GET.
	Method string
	// URL is an absolute http:// or https:// URL. Required.
	URL    string
	Header http.Header
	Body   []byte
	// Timeout bounds the request, within the call's own deadline.
	// Default: the call's deadline (and the host's ceiling).
	Timeout time.Duration
}

// HTTPResponse is the answer to an [HTTPRequest].
type HTTPResponse struct {
	StatusCode int
	Header     http.Header
	// Body is the whole body, at most the host's reply size limit.
	Body []byte
}

// ErrNotAllowed is matched (errors.Is) by the error of a host service that
// the plugin was not granted, or of a request the grant does not cover (an
// HTTP host outside the plugin's allow list).
var ErrNotAllowed = core.ErrNotAllowed

type hostKey struct{}

// WithHost returns a copy of ctx carrying h. The SDKs use it to hand the
// host to plugin code; tests of a plugin use it to run the plugin against a
// fake host.
func WithHost(ctx context.Context, h Host) context.Context {
	return context.WithValue(ctx, hostKey{}, h)
}

// HostFromContext returns the host carried by ctx. It is never nil: with no
// host, it returns one that discards logs and refuses HTTP with
// ErrNotAllowed.
func HostFromContext(ctx context.Context) Host {
	if h, ok := ctx.Value(hostKey{}).(Host); ok && h != nil {
		return h
	}
	return noHost{}
}

type noHost struct{}

func (noHost) Log(slog.Level, string, ...any) {}

func (noHost) HTTP(context.Context, *HTTPRequest) (*HTTPResponse, error) {
	return nil, fmt.Errorf("making an HTTP request: no host in the context: %w", ErrNotAllowed)
}
