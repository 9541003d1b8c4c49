package adapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Capability names a plugin may declare in its DescribeResponse.
const (
	// CapabilityIssuerReturnsKeys lets an issuer return its own private
	// keys instead of signing the core's CSR.
	CapabilityIssuerReturnsKeys = abi.CapabilityIssuerReturnsKeys
)

// Defaults of [Settings].
const (
	DefaultSetupTimeout     = 30 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 30 * time.Second
)

// Settings configure [Open].
type Settings struct {
	// Kind is the kind the plugin is used as. Required.
	Kind hostapi.Kind
	// Name is the plugin instance's name in the agent's config (the
	// plugin block's label), for messages. Required.
	Name string
	// ConfigJSON is the plugin's config block, as JSON. Default: "{}".
	ConfigJSON []byte
	// Logger receives the adapter's own records (a failed plugin Close).
	// Default: a logger that discards.
	Logger *slog.Logger
	// HostVersion is the agent's version, sent in Describe for messages.
	HostVersion string
	// HostServices are the fully-qualified names of the host services
	// granted to the plugin, sent in Describe.
	HostServices []string
	// SetupTimeout bounds each of Describe, Validate and Configure.
	// Default: [DefaultSetupTimeout].
	SetupTimeout time.Duration
	// CloseTimeout bounds the plugin's Close. Default: [DefaultCloseTimeout].
	CloseTimeout time.Duration
	// CallTimeout bounds each call of the kind's service, on top of the
	// caller's deadline; a runtime that enforces its own (WASM) leaves it
	// zero. Default: 0, no bound but the caller's.
	CallTimeout time.Duration
	// BreakerThreshold is the number of consecutive failed calls that
	// opens the circuit breaker. Default: [DefaultBreakerThreshold].
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker fails calls fast before
	// it lets one trial call through. Default: [DefaultBreakerCooldown].
	BreakerCooldown time.Duration
}

// Info is what a plugin said of itself in Describe.
type Info struct {
	// Name and Version are the plugin's own, e.g. "notifier-webhook" and
	// "1.2.0".
	Name    string `json:"name"`
	Version string `json:"version"`
	// Services are the fully-qualified services it implements.
	Services []string `json:"services"`
	// Capabilities are the optional capabilities it claims.
	Capabilities []string `json:"capabilities"`
	// Service is the kind service negotiated, e.g.
	// "svidagent.plugin.notifier.v1.Notifier"; empty from [Describe].
	Service string `json:"service,omitempty"`
}

// HasCapability reports whether the plugin claims capability c.
func (i Info) HasCapability(c string) bool {
	for _, have := range i.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// Plugin is an external plugin adapted to the hostapi interfaces. It is
// safe for concurrent use; the Conn below it serialises or pools calls
// as its runtime requires. One Plugin is one instance of a plugin block,
// shared by every reference to it.
type Plugin struct {
	conn    Conn
	paths   PathMapper // the runtime's, if its writer reports paths in a space of its own
	s       Settings
	info    Info
	adapter any
	breaker *breaker

	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	closed    bool
}

// Describe calls Describe on conn and returns what the plugin said of
// itself, without negotiating a kind. `svidagent plugin inspect` uses it.
// It does not close conn.
func Describe(ctx context.Context, conn Conn, hostVersion string, hostServices []string) (Info, error) {
	resp := &pluginv1.DescribeResponse{}
	if err := bound(conn).Invoke(ctx, MethodDescribe, &pluginv1.DescribeRequest{HostServices: hostServices, HostVersion: hostVersion}, resp); err != nil {
		return Info{}, fmt.Errorf("describing plugin: %w", err)
	}
	return Info{Name: BoundText(resp.GetName()), Version: BoundText(resp.GetVersion()),
		Services: boundAll(resp.GetServices()), Capabilities: boundAll(resp.GetCapabilities())}, nil
}

// Negotiate describes the plugin on conn and negotiates the versions of
// its services for s.Kind, without validating or configuring it. The
// returned Plugin can Validate and must be closed. On error conn is
// closed.
func Negotiate(ctx context.Context, conn Conn, s Settings) (*Plugin, error) {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.SetupTimeout <= 0 {
		s.SetupTimeout = DefaultSetupTimeout
	}
	if s.CloseTimeout <= 0 {
		s.CloseTimeout = DefaultCloseTimeout
	}
	if s.BreakerThreshold <= 0 {
		s.BreakerThreshold = DefaultBreakerThreshold
	}
	if s.BreakerCooldown <= 0 {
		s.BreakerCooldown = DefaultBreakerCooldown
	}
	if len(s.ConfigJSON) == 0 {
		s.ConfigJSON = []byte("{}")
	}
	mapper, _ := conn.(PathMapper) // before a wrapper hides it
	conn = bound(conn)             // every error below carries bounded plugin text
	p := &Plugin{conn: conn, paths: mapper, s: s, breaker: newBreaker(s.BreakerThreshold, s.BreakerCooldown, time.Now)}
	dctx, cancel := context.WithTimeout(ctx, s.SetupTimeout)
	info, err := Describe(dctx, conn, s.HostVersion, s.HostServices)
	cancel()
	if err != nil {
		// Describe failed: the plugin never started its lifecycle, so it
		// gets no Close call.
		_ = conn.Close()
		return nil, fmt.Errorf("opening plugin %q: %w", s.Name, err)
	}
	v, err := negotiate(s.Name, s.Kind, info.Services)
	if err != nil {
		_ = p.Close()
		return nil, err // negotiate's message names the plugin
	}
	info.Service = v.service
	p.info = info
	p.adapter = v.adapt(p)
	return p, nil
}

// Open makes conn a plugin of s.Kind: it calls Describe and negotiates
// versions as SPIRE's plugin Init does (the plugin must implement
// svidagent.plugin.v1.Plugin and a version of the kind's service this
// host supports), then Validate (problems are returned as a
// [hostapi.FieldErrors] error) and Configure. Open owns conn: on error it
// calls the plugin's Close, if the plugin got as far as Describe, and
// closes conn.
func Open(ctx context.Context, conn Conn, s Settings) (*Plugin, error) {
	p, err := Negotiate(ctx, conn, s)
	if err != nil {
		return nil, err
	}
	if err := p.Validate(ctx, p.s.ConfigJSON); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("opening plugin %q: %w", p.s.Name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, p.s.SetupTimeout)
	err = p.conn.Invoke(cctx, MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: p.s.ConfigJSON, Instance: p.s.Name}, &pluginv1.ConfigureResponse{})
	cancel()
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("opening plugin %q: configuring: %w", p.s.Name, err)
	}
	return p, nil
}

// Info returns what the plugin said of itself, and the negotiated service.
func (p *Plugin) Info() Info { return p.info }

// Validate asks the plugin to check configJSON without applying it. The
// plugin's problems are returned as a [hostapi.FieldErrors] error whose
// fields name attributes of the plugin's config block.
func (p *Plugin) Validate(ctx context.Context, configJSON []byte) error {
	if len(configJSON) == 0 {
		configJSON = []byte("{}")
	}
	ctx, cancel := context.WithTimeout(ctx, p.s.SetupTimeout)
	defer cancel()
	resp := &pluginv1.ValidateResponse{}
	if err := p.conn.Invoke(ctx, MethodValidate, &pluginv1.ValidateRequest{ConfigJson: configJSON}, resp); err != nil {
		return fmt.Errorf("validating the config: %w", err)
	}
	var fes hostapi.FieldErrors
	for _, pr := range resp.GetProblems() {
		fes.Add(BoundText(pr.GetField()), BoundText(pr.GetMessage()))
	}
	return fes.Err()
}

// Issuer returns the plugin as a hostapi.Issuer, or nil when it was not
// opened as an issuer.
func (p *Plugin) Issuer() hostapi.Issuer { i, _ := p.adapter.(hostapi.Issuer); return i }

// Writer returns the plugin as a hostapi.Writer, or nil when it was not
// opened as a writer.
func (p *Plugin) Writer() hostapi.Writer { w, _ := p.adapter.(hostapi.Writer); return w }

// Notifier returns the plugin as a hostapi.Notifier, or nil when it was
// not opened as a notifier.
func (p *Plugin) Notifier() hostapi.Notifier { n, _ := p.adapter.(hostapi.Notifier); return n }

// Status returns the state of the plugin's circuit breaker, for health
// and status reports.
func (p *Plugin) Status() Status { return p.breaker.status() }

// ErrClosed is returned by calls into a closed plugin.
var ErrClosed = errors.New("plugin closed")

// call invokes method through the circuit breaker. what is the gerund
// phrase of the error context ("notifying").
func (p *Plugin) call(ctx context.Context, what, method string, req, resp proto.Message) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("%s through plugin %q: %w", what, p.s.Name, ErrClosed)
	}
	if err := p.breaker.allow(); err != nil {
		return fmt.Errorf("%s through plugin %q: %w", what, p.s.Name, err)
	}
	if p.s.CallTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.s.CallTimeout)
		defer cancel()
	}
	err := p.conn.Invoke(ctx, method, req, resp)
	switch {
	case err == nil:
		p.breaker.record(nil)
	case ctx.Err() == context.Canceled && status.Code(err) != codes.DeadlineExceeded:
		// The caller gave up (the agent is stopping): not the plugin's
		// failure.
		p.breaker.release()
	default:
		p.breaker.record(err)
	}
	if err != nil {
		return fmt.Errorf("%s through plugin %q: %w", what, p.s.Name, err)
	}
	return nil
}

// Close calls the plugin's Close, bounded by the close timeout, then
// closes the connection. It is idempotent and works after a partial setup
// (a failed Validate or Configure).
func (p *Plugin) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		already := p.closed
		p.closed = true
		p.mu.Unlock()
		if already {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.s.CloseTimeout)
		err := p.conn.Invoke(ctx, MethodClose, &pluginv1.CloseRequest{}, &pluginv1.CloseResponse{})
		cancel()
		if err != nil {
			p.s.Logger.Warn("the plugin's Close failed; closing its connection anyway", "plugin", p.s.Name, "error", err)
		}
		if cerr := p.conn.Close(); cerr != nil {
			p.closeErr = fmt.Errorf("closing plugin %q: %w", p.s.Name, cerr)
		}
	})
	return p.closeErr
}
