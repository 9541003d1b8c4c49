// Package notifier is the small SDK for a notifier plugin: what a vendor
// needs to tell its product that credentials rotated, in a WebAssembly
// module of about 3.5 MB (sdk/wasm's notifier: 6 MB), and a go-plugin
// executable from the same source.
//
// A notifier built with it imports no go-spiffe, crypto/x509 or net/http:
// the event it gets carries identities, times and paths, never
// certificates or keys, so there is nothing to parse; logging and HTTP go
// through the agent (hostapi/ABI.md §5) with types of this package.
//
//	func init() { notifier.Serve(info, &myNotifier{}) }
//
//	func main() { notifier.Main() }
//
// Built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, Serve
// registers the plugin in the module's _initialize and main never runs.
// Built for the machine (go build), Serve records the plugin and Main
// serves it with go-plugin (sdk/goplugin), as the agent expects of a
// command plugin.
//
// Every type here is an alias of the one in hostapi, hostapi/base, sdk or
// sdk/core: a notifier written with this package is a hostapi.Notifier,
// its Validate returns hostapi.FieldErrors, and conformance.Target,
// sdk/inproc and sdk/goplugin take it as it is. A plugin that also needs
// certificates uses sdk/wasm instead.
package notifier

import (
	"context"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi/base"
	"github.com/svidagent/svidagent/sdk/core"
)

type (
	// Info describes the plugin: its answer to Describe.
	Info = core.Info
	// Notifier is what a notifier plugin implements.
	Notifier = base.Notifier
	// Configurer is implemented by a notifier that takes a config {}
	// block, as JSON: Validate reports what a user must fix, Configure
	// applies a config that passed Validate.
	Configurer = core.Configurer
	// Lifecycle is implemented by a notifier that runs background work.
	Lifecycle = base.Lifecycle
	// Event tells the notifier that credentials were delivered. It never
	// carries key material or tokens.
	Event = base.RotationEvent
	// X509Identity describes one delivered X509-SVID.
	X509Identity = base.X509Identity
	// JWTIdentity describes one delivered JWT-SVID.
	JWTIdentity = base.JWTIdentity
	// Changes is the set of credential parts that changed.
	Changes = base.Changes
	// FieldError is a problem with one configuration field.
	FieldError = base.FieldError
	// FieldErrors collects the problems of one configuration.
	FieldErrors = base.FieldErrors
	// Code is a status code of host API v1.
	Code = core.Code
)

// The parts of an Event's Reason.
const (
	ChangedX509      = base.ChangedX509
	ChangedJWTSVID   = base.ChangedJWTSVID
	ChangedJWTBundle = base.ChangedJWTBundle
)

// The codes a notifier may return; a plain error is CodeUnknown.
const (
	CodeInvalidArgument    = core.CodeInvalidArgument
	CodeDeadlineExceeded   = core.CodeDeadlineExceeded
	CodePermissionDenied   = core.CodePermissionDenied
	CodeResourceExhausted  = core.CodeResourceExhausted
	CodeFailedPrecondition = core.CodeFailedPrecondition
	CodeInternal           = core.CodeInternal
	CodeUnavailable        = core.CodeUnavailable
	CodeUnknown            = core.CodeUnknown
)

// Error returns an error that the agent sees with code and msg, e.g.
// notifier.Error(notifier.CodeUnavailable, "the reload endpoint is down").
func Error(code Code, msg string) error { return core.Error(code, msg) }

// Errorf is Error with a formatted message; %w wraps as fmt.Errorf does.
func Errorf(code Code, format string, args ...any) error {
	return core.Errorf(code, format, args...)
}

// ErrNotAllowed is matched (errors.Is) by the error of an HTTP request
// the plugin's grant does not cover.
var ErrNotAllowed = core.ErrNotAllowed

// Level is a log level, with log/slog's values (this package does not
// import log/slog, which would add 0.8 MB to a module).
type Level int

const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// Log writes msg to the agent's log at level, tagged with the plugin. kv
// are alternating keys and values, as for slog.Logger.Log without
// slog.Attr: each value is rendered with fmt.Sprint, and a key that is
// not a string, or a last key without a value, is logged under
// "!BADKEY", as slog does. The agent rate-limits plugin logs; Log never
// fails. ctx is the context of a call (Notify, Configure) or of a
// Lifecycle's Start; with another context the line is dropped.
func Log(ctx context.Context, level Level, msg string, kv ...any) {
	logTo(ctx, level, msg, kv)
}

// Header is an HTTP header: names as sent (the host sends canonical MIME
// names, e.g. "Content-Type"), each with its values.
type Header map[string][]string

// Get returns the first value of the header name, matched without regard
// to case, or "".
func (h Header) Get(name string) string {
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// Set replaces the values of the header name, matched without regard to
// case, with value, under the canonical MIME form of name
// ("content-type" becomes "Content-Type"), as net/http's Header.Set does.
func (h Header) Set(name, value string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
	h[canonical(name)] = []string{value}
}

// canonical returns name with the first letter and every letter after a
// hyphen in upper case and the rest in lower case, for ASCII names.
func canonical(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// HTTPRequest is an HTTP request the agent makes on the plugin's behalf.
type HTTPRequest struct {
	// Method is the HTTP method. Default: GET.
	Method string
	// URL is an absolute http:// or https:// URL on a host of the
	// plugin's allow { hosts = [...] } grant. Required.
	URL    string
	Header Header
	Body   []byte
	// Timeout bounds the request, within the call's own deadline.
	// Default: the call's deadline (and the agent's ceiling).
	Timeout time.Duration
}

// HTTPResponse is the answer to an [HTTPRequest].
type HTTPResponse struct {
	StatusCode int
	Header     Header
	// Body is the whole body, at most the agent's reply size limit.
	Body []byte
}

// HTTP makes req through the agent, which enforces the plugin's grant: a
// host outside it, or a plugin without the grant, gives an error matching
// ErrNotAllowed. A non-2xx status is not an error. ctx is the context of
// a call or of a Lifecycle's Start.
func HTTP(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
	return httpTo(ctx, req)
}
