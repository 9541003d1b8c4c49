package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/svidagent/svidagent/hostapi/base"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk/core"
	"github.com/svidagent/svidagent/sdk/internal/lite"
)

// HostCaller calls a host service: method is in gRPC's full form
// ("/svidagent.host.v1.HTTP/Request"), req and resp are protobuf bytes, and
// code and msg are the answer's status (0 and "" on success). A runtime
// that needs another method form (the WASM envelope has no leading "/")
// converts it.
type HostCaller func(ctx context.Context, method string, req []byte) (code uint32, msg string, resp []byte)

// Dispatcher serves host API v1 calls, as raw method names and protobuf
// bytes, with a plugin implementation. It is shared by sdk/wasm,
// sdk/goplugin, sdk/inproc and sdk/notifier; it never panics and never
// logs.
//
// This package links only what a notifier needs (no certificate parsing,
// no net/http): the kinds that handle credentials, and the core.Host that
// plugin code finds in its context, are added by package
// sdk/internal/dispatch, through [NewKind].
//
// Concurrency: calls of the kind's method may run concurrently (the plugin
// handles that); Configure and Close wait for them and run alone.
type Dispatcher struct {
	info     core.Info
	kind     base.Kind
	service  string
	impl     any
	serve    KindFunc        // serves the kind's method
	conf     core.Configurer // nil when impl takes no config
	host     HostCaller      // nil: no host
	withHost WithHost
	// bgCtx is context.Background() with the host, made once: the context
	// of every call of a WASM guest.
	bgCtx context.Context

	mu         sync.RWMutex // held for writing by Configure and Close
	configured bool
	closed     bool
	// stopLC stops the running lifecycle (nil when none runs): it cancels
	// the context Start got and calls the plugin's Stop. Guarded by mu.
	stopLC func()
}

// KindFunc serves the kind's method (Notify, Write or Issue): it decodes
// the request, calls the plugin (d.Impl()) and returns the encoded
// response.
type KindFunc func(d *Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error)

// WithHost returns ctx carrying what plugin code uses to reach the host:
// call, or nothing when call is nil (a nil host must then hide any host
// ctx already carries). Calls made through it use logCtx, which outlives
// the plugin call, so that a line logged as a call ends still goes out.
type WithHost func(ctx context.Context, call HostCaller, logCtx context.Context) context.Context

// NewNotifier returns a Dispatcher serving the notifier n, linking no
// other kind's code. withHost puts the host into each call's context
// (sdk/internal/dispatch's puts an core.Host there, sdk/notifier its own).
//
// Calls of Notify answer FAILED_PRECONDITION until a Configure succeeded,
// also for a plugin that takes no config (ABI.md §6), and after Close. A
// payload that does not decode is then INVALID_ARGUMENT; the precondition
// is checked first.
//
// A plugin implementing base.Lifecycle is started after every successful
// Configure, and stopped before the next Configure and at Close (before
// its own Close). Start gets a context that the Dispatcher cancels just
// before Stop, carrying the host; an error from Start fails the
// Configure, and the plugin is then not configured. When a re-Configure
// fails, the plugin keeps its previous configuration and is started again
// with it.
func NewNotifier(info core.Info, n base.Notifier, host HostCaller, withHost WithHost) (*Dispatcher, error) {
	return NewKind(info, n, base.KindNotifier, ServeNotify, host, withHost)
}

// NewKind returns a Dispatcher serving impl as a plugin of kind, whose
// method serve answers. The caller has checked that impl is of kind.
func NewKind(info core.Info, impl any, kind base.Kind, serve KindFunc, host HostCaller, withHost WithHost) (*Dispatcher, error) {
	if info.Name == "" {
		return nil, errors.New("creating the plugin dispatcher: sdk.Info.Name is required")
	}
	if impl == nil {
		return nil, errors.New("creating the plugin dispatcher: the plugin implementation is nil")
	}
	d := &Dispatcher{info: info, kind: kind, impl: impl, serve: serve, host: host, withHost: withHost}
	d.bgCtx = withHost(context.Background(), host, context.Background())
	d.service = map[base.Kind]string{
		base.KindIssuer: abi.Issuer_ServiceName, base.KindWriter: abi.Writer_ServiceName, base.KindNotifier: abi.Notifier_ServiceName,
	}[d.kind]
	d.conf, _ = impl.(core.Configurer)
	return d, nil
}

// Info returns the plugin's Info.
func (d *Dispatcher) Info() core.Info { return d.info }

// Impl returns the plugin implementation.
func (d *Dispatcher) Impl() any { return d.impl }

// Kind returns the kind of the plugin.
func (d *Dispatcher) Kind() base.Kind { return d.kind }

// Handle serves one call. method is "<package>.<Service>/<Method>", with or
// without a leading "/"; payload is the request message, protobuf binary.
// It returns a status code of hostapi/ABI.md, a message (empty on success)
// and the response message, protobuf binary (empty on error). A panic in
// plugin code is recovered and answered with INTERNAL.
func (d *Dispatcher) Handle(ctx context.Context, method string, payload []byte) (code uint32, msg string, resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			code, msg, resp = uint32(core.CodeInternal), fmt.Sprintf("plugin %s panicked: %v", d.info.Name, r), nil
		}
	}()
	if ctx == context.Background() {
		// A WASM guest's every call: the context made once will do.
		ctx = d.bgCtx
	} else {
		ctx = d.withHost(ctx, d.host, context.WithoutCancel(ctx))
	}
	var (
		out lite.Marshaler
		err error
	)
	// The switch compares method without gRPC's leading "/": building the
	// full name would allocate on every call of a WASM guest, whose
	// envelopes carry none.
	switch m := strings.TrimPrefix(method, "/"); m {
	case abi.Plugin_Describe_FullMethodName[1:]:
		if err = Decode(payload, &lite.DescribeRequest{}, "DescribeRequest"); err == nil {
			out = d.describe()
		}
	case abi.Plugin_Validate_FullMethodName[1:]:
		var req lite.ValidateRequest
		if err = Decode(payload, &req, "ValidateRequest"); err == nil {
			out = &lite.ValidateResponse{Problems: lite.FieldErrors(d.validate(req.ConfigJSON))}
		}
	case abi.Plugin_Configure_FullMethodName[1:]:
		var req lite.ConfigureRequest
		if err = Decode(payload, &req, "ConfigureRequest"); err == nil {
			out, err = &lite.Empty{}, d.configure(ctx, req.ConfigJSON)
		}
	case abi.Plugin_Close_FullMethodName[1:]:
		if err = Decode(payload, &lite.Empty{}, "CloseRequest"); err == nil {
			out, err = &lite.Empty{}, d.close()
		}
	case abi.Notifier_Notify_FullMethodName[1:], abi.Writer_Write_FullMethodName[1:], abi.Issuer_Issue_FullMethodName[1:]:
		if m != d.kindMethod()[1:] {
			return uint32(core.CodeUnimplemented), fmt.Sprintf("plugin %s is a %s and does not implement %s", d.info.Name, d.kind, abi.Method(m)), nil
		}
		out, err = d.serveKind(ctx, m, payload)
	default:
		return uint32(core.CodeUnimplemented), fmt.Sprintf("plugin %s does not implement method %q", d.info.Name, method), nil
	}
	if err != nil {
		return uint32(core.CodeOf(err)), err.Error(), nil
	}
	b, err := out.Marshal()
	if err != nil {
		return uint32(core.CodeInternal), "encoding the response: " + err.Error(), nil
	}
	return 0, "", b
}

// Decode decodes payload into req, a message named name; a malformed
// payload is INVALID_ARGUMENT.
func Decode(payload []byte, req interface{ Unmarshal([]byte) error }, name string) error {
	if err := req.Unmarshal(payload); err != nil {
		return core.Errorf(core.CodeInvalidArgument, "decoding %s: %v", name, err)
	}
	return nil
}

func (d *Dispatcher) kindMethod() string {
	switch d.kind {
	case base.KindIssuer:
		return abi.Issuer_Issue_FullMethodName
	case base.KindWriter:
		return abi.Writer_Write_FullMethodName
	default:
		return abi.Notifier_Notify_FullMethodName
	}
}

func (d *Dispatcher) describe() *lite.DescribeResponse {
	// A field added to DescribeResponse is set here (see the NEW
	// DESCRIBE FIELDS markers in internal/wire/lite).
	return &lite.DescribeResponse{
		Name: d.info.Name, Version: d.info.Version,
		Services:          []string{abi.Plugin_ServiceName, d.service},
		Capabilities:      slices.Clone(d.info.Capabilities),
		ExampleConfigJSON: bytes.Clone(d.info.ExampleConfigJSON),
	}
}

// emptyConfig reports whether b is no config at all: empty, null, or an
// object with no member ({}, with any JSON white space inside). It needs
// no JSON decoder, which a plugin without config would otherwise link.
func emptyConfig(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return true
	}
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

func (d *Dispatcher) validate(config []byte) base.FieldErrors {
	if d.conf == nil {
		if emptyConfig(config) {
			return nil
		}
		var es base.FieldErrors
		es.Add("", fmt.Sprintf("plugin %s takes no configuration; remove its config block", d.info.Name))
		return es
	}
	return d.conf.Validate(config)
}

func (d *Dispatcher) configure(ctx context.Context, config []byte) error {
	if es := d.validate(config); len(es) > 0 {
		return core.Errorf(core.CodeInvalidArgument, "configuring plugin %s: %w", d.info.Name, es)
	}
	lc, _ := d.impl.(base.Lifecycle)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return core.Errorf(core.CodeFailedPrecondition, "configuring plugin %s: the plugin is closed", d.info.Name)
	}
	d.stopLifecycle()
	if d.conf != nil {
		if err := d.conf.Configure(ctx, config); err != nil {
			if d.configured && lc != nil {
				// The previous configuration still applies: run it again.
				if serr := d.startLifecycle(lc); serr != nil {
					d.configured = false
					return fmt.Errorf("configuring plugin %s: %w (and restarting it with its previous configuration: %w)", d.info.Name, err, serr)
				}
			}
			return fmt.Errorf("configuring plugin %s: %w", d.info.Name, err)
		}
	}
	if lc != nil {
		if err := d.startLifecycle(lc); err != nil {
			d.configured = false
			return fmt.Errorf("starting plugin %s: %w", d.info.Name, err)
		}
	}
	d.configured = true
	return nil
}

// startLifecycle starts lc with a context of its own, canceled by
// stopLifecycle. The caller holds mu for writing.
func (d *Dispatcher) startLifecycle(lc base.Lifecycle) error {
	ctx, cancel := context.WithCancel(context.Background())
	ctx = d.withHost(ctx, d.host, context.Background())
	if err := safeStart(lc, ctx); err != nil {
		cancel()
		return err
	}
	d.stopLC = func() {
		cancel()
		lc.Stop()
	}
	return nil
}

// safeStart calls lc.Start, answering a panic with an error.
func safeStart(lc base.Lifecycle, ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lifecycle Start panicked: %v", r)
		}
	}()
	return lc.Start(ctx)
}

// stopLifecycle stops the running lifecycle, if any, and waits for it.
// The caller holds mu for writing.
func (d *Dispatcher) stopLifecycle() {
	if d.stopLC == nil {
		return
	}
	stop := d.stopLC
	d.stopLC = nil
	stop()
}

func (d *Dispatcher) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.stopLifecycle()
	if c, ok := d.impl.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("closing plugin %s: %w", d.info.Name, err)
		}
	}
	return nil
}

func (d *Dispatcher) serveKind(ctx context.Context, method string, payload []byte) (lite.Marshaler, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	name := method[strings.LastIndexByte(method, '/')+1:]
	if d.closed {
		return nil, core.Errorf(core.CodeFailedPrecondition, "calling %s: plugin %s is closed", name, d.info.Name)
	}
	if !d.configured {
		return nil, core.Errorf(core.CodeFailedPrecondition, "calling %s: plugin %s is not configured; Configure must succeed first", name, d.info.Name)
	}
	return d.serve(d, ctx, payload)
}

// ServeNotify is the KindFunc of a notifier.
func ServeNotify(d *Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error) {
	var req lite.NotifyRequest
	// Unmarshal called directly, not through Decode's interface, so that
	// req stays on the stack.
	if err := req.Unmarshal(payload); err != nil {
		return nil, core.Errorf(core.CodeInvalidArgument, "decoding NotifyRequest: %v", err)
	}
	// RotationEvent has no field for keys or tokens: whatever else the
	// payload carried is dropped here.
	if err := d.impl.(base.Notifier).Notify(ctx, lite.RotationEvent(&req)); err != nil {
		return nil, err
	}
	return &lite.Empty{}, nil
}
