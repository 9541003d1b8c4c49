package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/internal/lite"
)

// HostCaller calls a host service: method is in gRPC's full form
// ("/svidagent.host.v1.HTTP/Request"), req and resp are protobuf bytes, and
// code and msg are the answer's status (0 and "" on success). A runtime
// that needs another method form (the WASM envelope has no leading "/")
// converts it.
type HostCaller func(ctx context.Context, method string, req []byte) (code uint32, msg string, resp []byte)

// Dispatcher serves host API v1 calls, as raw method names and protobuf
// bytes, with a plugin implementation. It is shared by sdk/wasm and
// sdk/goplugin; it never panics and never logs.
//
// Concurrency: calls of the kind's method may run concurrently (the plugin
// handles that); Configure and Close wait for them and run alone.
type Dispatcher struct {
	info    sdk.Info
	kind    hostapi.Kind
	service string
	impl    any
	serve   kindFunc       // serves the kind's method
	conf    sdk.Configurer // nil when impl takes no config
	host    HostCaller     // nil: no host

	mu         sync.RWMutex // held for writing by Configure and Close
	configured bool
	closed     bool
	// stopLC stops the running lifecycle (nil when none runs): it cancels
	// the context Start got and calls the plugin's Stop. Guarded by mu.
	stopLC func()
}

// kindFunc serves the kind's method (Notify, Write or Issue): it decodes
// the request, calls the plugin and returns the encoded response.
type kindFunc func(d *Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error)

// New returns a Dispatcher serving impl, which must implement exactly one
// of hostapi.Issuer, hostapi.Writer and hostapi.Notifier, and may implement
// sdk.Configurer, hostapi.Lifecycle and io.Closer. host may be nil: plugin
// code then gets a host that discards logs and refuses HTTP.
//
// New links the codecs of every plugin kind into the binary (a notifier
// then carries crypto/x509 for the writer's certificates). A WASM guest
// that knows its kind uses [NewNotifier], [NewWriter] or [NewIssuer], which
// link only their own.
//
// Calls of the kind's method answer FAILED_PRECONDITION until a Configure
// succeeded, also for a plugin that takes no config (ABI.md §6), and
// after Close. A payload that does not decode is then INVALID_ARGUMENT;
// the precondition is checked first.
//
// A plugin implementing hostapi.Lifecycle is started after every
// successful Configure, and stopped before the next Configure and at Close
// (before its own Close). Start gets a context that the Dispatcher cancels
// just before Stop, carrying the host (sdk.HostFromContext); an error from
// Start fails the Configure, and the plugin is then not configured. When a
// re-Configure fails, the plugin keeps its previous configuration and is
// started again with it.
func New(info sdk.Info, impl any, host HostCaller) (*Dispatcher, error) {
	return newDispatcher(info, impl, host, map[hostapi.Kind]kindFunc{
		hostapi.KindIssuer: serveIssue, hostapi.KindWriter: serveWrite, hostapi.KindNotifier: serveNotify,
	})
}

// NewNotifier is [New] for a notifier; it links no writer or issuer code.
func NewNotifier(info sdk.Info, n hostapi.Notifier, host HostCaller) (*Dispatcher, error) {
	return newDispatcher(info, nilIfNil(n), host, map[hostapi.Kind]kindFunc{hostapi.KindNotifier: serveNotify})
}

// NewWriter is [New] for a writer; it links no notifier or issuer code.
func NewWriter(info sdk.Info, w hostapi.Writer, host HostCaller) (*Dispatcher, error) {
	return newDispatcher(info, nilIfNil(w), host, map[hostapi.Kind]kindFunc{hostapi.KindWriter: serveWrite})
}

// NewIssuer is [New] for an issuer; it links no notifier or writer code.
func NewIssuer(info sdk.Info, i hostapi.Issuer, host HostCaller) (*Dispatcher, error) {
	return newDispatcher(info, nilIfNil(i), host, map[hostapi.Kind]kindFunc{hostapi.KindIssuer: serveIssue})
}

// nilIfNil turns a nil interface value of any interface type into a nil
// any.
func nilIfNil[T any](v T) any {
	if any(v) == nil {
		return nil
	}
	return v
}

// newDispatcher checks impl and serves its kind with the kindFunc of
// serve; a kind serve has no kindFunc for cannot happen through the
// exported constructors, whose parameter types fix the kind.
func newDispatcher(info sdk.Info, impl any, host HostCaller, serve map[hostapi.Kind]kindFunc) (*Dispatcher, error) {
	if info.Name == "" {
		return nil, errors.New("creating the plugin dispatcher: sdk.Info.Name is required")
	}
	if impl == nil {
		return nil, errors.New("creating the plugin dispatcher: the plugin implementation is nil")
	}
	if len(info.ExampleConfigJSON) > 0 && !json.Valid(info.ExampleConfigJSON) {
		return nil, fmt.Errorf("creating the plugin dispatcher: sdk.Info.ExampleConfigJSON is not valid JSON: %q", info.ExampleConfigJSON)
	}
	var kinds []hostapi.Kind
	if _, ok := impl.(hostapi.Issuer); ok {
		kinds = append(kinds, hostapi.KindIssuer)
	}
	if _, ok := impl.(hostapi.Writer); ok {
		kinds = append(kinds, hostapi.KindWriter)
	}
	if _, ok := impl.(hostapi.Notifier); ok {
		kinds = append(kinds, hostapi.KindNotifier)
	}
	switch len(kinds) {
	case 0:
		return nil, fmt.Errorf("creating the plugin dispatcher: %T implements none of hostapi.Issuer, hostapi.Writer, hostapi.Notifier; implement exactly one", impl)
	case 1:
	default:
		return nil, fmt.Errorf("creating the plugin dispatcher: %T implements several plugin kinds (%v); implement exactly one", impl, kinds)
	}
	d := &Dispatcher{info: info, kind: kinds[0], impl: impl, serve: serve[kinds[0]]}
	d.service = map[hostapi.Kind]string{
		hostapi.KindIssuer: abi.Issuer_ServiceName, hostapi.KindWriter: abi.Writer_ServiceName, hostapi.KindNotifier: abi.Notifier_ServiceName,
	}[d.kind]
	d.conf, _ = impl.(sdk.Configurer)
	d.host = host
	return d, nil
}

// Kind returns the kind of the plugin.
func (d *Dispatcher) Kind() hostapi.Kind { return d.kind }

// Handle serves one call. method is "<package>.<Service>/<Method>", with or
// without a leading "/"; payload is the request message, protobuf binary.
// It returns a status code of hostapi/ABI.md, a message (empty on success)
// and the response message, protobuf binary (empty on error). A panic in
// plugin code is recovered and answered with INTERNAL.
func (d *Dispatcher) Handle(ctx context.Context, method string, payload []byte) (code uint32, msg string, resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			code, msg, resp = uint32(sdk.CodeInternal), fmt.Sprintf("plugin %s panicked: %v", d.info.Name, r), nil
		}
	}()
	if d.host != nil {
		ctx = sdk.WithHost(ctx, hostImpl{call: d.host, ctx: context.WithoutCancel(ctx)})
	} else {
		ctx = sdk.WithHost(ctx, nil)
	}
	var (
		out lite.Marshaler
		err error
	)
	switch m := fullMethod(method); m {
	case abi.Plugin_Describe_FullMethodName:
		if err = decode(payload, &lite.DescribeRequest{}, "DescribeRequest"); err == nil {
			out = d.describe()
		}
	case abi.Plugin_Validate_FullMethodName:
		var req lite.ValidateRequest
		if err = decode(payload, &req, "ValidateRequest"); err == nil {
			out = &lite.ValidateResponse{Problems: lite.FieldErrors(d.validate(req.ConfigJSON))}
		}
	case abi.Plugin_Configure_FullMethodName:
		var req lite.ConfigureRequest
		if err = decode(payload, &req, "ConfigureRequest"); err == nil {
			out, err = &lite.Empty{}, d.configure(ctx, req.ConfigJSON)
		}
	case abi.Plugin_Close_FullMethodName:
		if err = decode(payload, &lite.Empty{}, "CloseRequest"); err == nil {
			out, err = &lite.Empty{}, d.close()
		}
	case abi.Notifier_Notify_FullMethodName, abi.Writer_Write_FullMethodName, abi.Issuer_Issue_FullMethodName:
		if m != d.kindMethod() {
			return uint32(sdk.CodeUnimplemented), fmt.Sprintf("plugin %s is a %s and does not implement %s", d.info.Name, d.kind, abi.Method(m)), nil
		}
		out, err = d.serveKind(ctx, m, payload)
	default:
		return uint32(sdk.CodeUnimplemented), fmt.Sprintf("plugin %s does not implement method %q", d.info.Name, method), nil
	}
	if err != nil {
		return uint32(sdk.CodeOf(err)), err.Error(), nil
	}
	b, err := out.Marshal()
	if err != nil {
		return uint32(sdk.CodeInternal), "encoding the response: " + err.Error(), nil
	}
	return 0, "", b
}

// decode decodes payload into req, a message named name; a malformed
// payload is INVALID_ARGUMENT.
func decode(payload []byte, req interface{ Unmarshal([]byte) error }, name string) error {
	if err := req.Unmarshal(payload); err != nil {
		return sdk.Errorf(sdk.CodeInvalidArgument, "decoding %s: %v", name, err)
	}
	return nil
}

func (d *Dispatcher) kindMethod() string {
	switch d.kind {
	case hostapi.KindIssuer:
		return abi.Issuer_Issue_FullMethodName
	case hostapi.KindWriter:
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

// emptyConfig reports whether b is no config at all: empty, null or {}.
func emptyConfig(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && len(m) == 0
}

func (d *Dispatcher) validate(config []byte) hostapi.FieldErrors {
	if d.conf == nil {
		if emptyConfig(config) {
			return nil
		}
		var es hostapi.FieldErrors
		es.Add("", fmt.Sprintf("plugin %s takes no configuration; remove its config block", d.info.Name))
		return es
	}
	return d.conf.Validate(config)
}

func (d *Dispatcher) configure(ctx context.Context, config []byte) error {
	if es := d.validate(config); len(es) > 0 {
		return sdk.Errorf(sdk.CodeInvalidArgument, "configuring plugin %s: %w", d.info.Name, es)
	}
	lc, _ := d.impl.(hostapi.Lifecycle)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return sdk.Errorf(sdk.CodeFailedPrecondition, "configuring plugin %s: the plugin is closed", d.info.Name)
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
func (d *Dispatcher) startLifecycle(lc hostapi.Lifecycle) error {
	ctx, cancel := context.WithCancel(context.Background())
	if d.host != nil {
		ctx = sdk.WithHost(ctx, hostImpl{call: d.host, ctx: context.Background()})
	} else {
		ctx = sdk.WithHost(ctx, nil)
	}
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
func safeStart(lc hostapi.Lifecycle, ctx context.Context) (err error) {
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
		return nil, sdk.Errorf(sdk.CodeFailedPrecondition, "calling %s: plugin %s is closed", name, d.info.Name)
	}
	if !d.configured {
		return nil, sdk.Errorf(sdk.CodeFailedPrecondition, "calling %s: plugin %s is not configured; Configure must succeed first", name, d.info.Name)
	}
	return d.serve(d, ctx, payload)
}

func serveNotify(d *Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error) {
	var req lite.NotifyRequest
	if err := decode(payload, &req, "NotifyRequest"); err != nil {
		return nil, err
	}
	// RotationEvent has no field for keys or tokens: whatever else the
	// payload carried is dropped here.
	if err := d.impl.(hostapi.Notifier).Notify(ctx, lite.RotationEvent(&req)); err != nil {
		return nil, err
	}
	return &lite.Empty{}, nil
}

func serveWrite(d *Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error) {
	var req lite.WriteRequest
	if err := decode(payload, &req, "WriteRequest"); err != nil {
		return nil, err
	}
	set, err := lite.CredentialSet(&req)
	if err != nil {
		return nil, sdk.Error(sdk.CodeInvalidArgument, err.Error())
	}
	res, err := d.impl.(hostapi.Writer).Write(ctx, set)
	if err != nil {
		return nil, err
	}
	out := &lite.WriteResponse{}
	if res != nil {
		out.Paths = res.Paths
	}
	return out, nil
}

func serveIssue(d *Dispatcher, ctx context.Context, payload []byte) (lite.Marshaler, error) {
	var req lite.IssueRequest
	if err := decode(payload, &req, "IssueRequest"); err != nil {
		return nil, err
	}
	r, err := lite.IssueRequestOf(&req)
	if err != nil {
		return nil, sdk.Error(sdk.CodeInvalidArgument, err.Error())
	}
	creds, err := d.impl.(hostapi.Issuer).Issue(ctx, r)
	if err != nil {
		return nil, err
	}
	if creds == nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "plugin %s: Issue returned neither credentials nor an error", d.info.Name)
	}
	withKeys := slices.Contains(d.info.Capabilities, abi.CapabilityIssuerReturnsKeys)
	if !withKeys {
		for _, s := range creds.X509SVIDs {
			if s.PrivateKey != nil {
				return nil, sdk.Errorf(sdk.CodeInternal, "plugin %s returned a private key for %s without declaring the %q capability; sign the request's CSR instead, or declare it", d.info.Name, s.ID, abi.CapabilityIssuerReturnsKeys)
			}
		}
	}
	resp, err := lite.IssueResponseOf(creds, withKeys)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "plugin %s: encoding its credentials: %w", d.info.Name, err)
	}
	return resp, nil
}
