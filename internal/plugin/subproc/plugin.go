//go:build unix

package subproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/svidagent/svidagent/hostapi"
	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Defaults of [Config].
const (
	DefaultStartTimeout      = 10 * time.Second
	DefaultRestartBackoff    = 100 * time.Millisecond
	DefaultMaxRestartBackoff = 30 * time.Second
	DefaultBreakerThreshold  = 5
	DefaultBreakerCooldown   = time.Minute
)

// EnvPIDNamespace, set to "off" in the agent's environment, starts every
// plugin without a pid namespace, under the reaper (a diagnostic and test
// knob: it forces the path taken where the kernel refuses namespaces).
const EnvPIDNamespace = "SVIDAGENT_PLUGIN_PIDNS"

// healthTimeout bounds the health check that tells a crashed plugin from
// one that answered UNAVAILABLE itself.
const healthTimeout = 2 * time.Second

// Config configures a subprocess plugin.
type Config struct {
	// Path is the plugin executable. Required.
	Path string
	// SHA256 is the executable's sha256, lowercase hex (as `svidagent
	// plugin hash` prints it). Required unless InsecureSkipChecksum.
	SHA256 string
	// InsecureSkipChecksum runs the plugin without checking SHA256, for
	// development. Every start logs a warning.
	InsecureSkipChecksum bool
	// Kind is the plugin's kind, for messages.
	Kind hostapi.Kind
	// Name is the plugin block's name. Required.
	Name string
	// Logger receives the runtime's messages, tagged component=subproc
	// plugin=<Name>. Default: a logger that discards.
	Logger *slog.Logger
	// StartTimeout bounds a start: the process, go-plugin's handshake and
	// the replay of Describe and Configure. Default: [DefaultStartTimeout].
	StartTimeout time.Duration
	// Services are the host services the plugin was granted, served on
	// go-plugin's broker. The plugin's stderr is re-emitted through
	// Services.Logger, which tags it component=plugin plugin=<Name> and
	// rate-limits it. Default: a Logger on Logger, and no HTTP.
	Services *services.Services
	// StateDir is the agent's state directory; executables are pinned to
	// <StateDir>/plugins/<sha256>. Required.
	StateDir string
	// RestartBackoff is the wait before the second restart in a row; it
	// doubles with every further failure, up to MaxRestartBackoff. The
	// first restart after a crash is immediate.
	// Default: [DefaultRestartBackoff].
	RestartBackoff time.Duration
	// MaxRestartBackoff caps RestartBackoff's doubling.
	// Default: [DefaultMaxRestartBackoff].
	MaxRestartBackoff time.Duration
	// BreakerThreshold is the number of consecutive failures (crashes and
	// failed starts) after which calls fail fast for BreakerCooldown.
	// Default: [DefaultBreakerThreshold].
	BreakerThreshold int
	// BreakerCooldown is how long the open breaker fails calls fast before
	// one start is tried again. Default: [DefaultBreakerCooldown].
	BreakerCooldown time.Duration
	// MemoryBytes bounds the growth of the plugin's address space after
	// its start: once the go-plugin handshake is done, its RLIMIT_AS is
	// set to its address space at that moment plus MemoryBytes, so that a
	// plugin that allocates without bound dies (the Go runtime's "out of
	// memory") and is restarted, instead of taking the machine's memory.
	// It is not a bound on resident memory (a cgroup's memory.max would
	// be): the Go runtime reserves address space in 64 MiB arenas, so the
	// heap a plugin can reach is MemoryBytes rounded up to the next arena
	// or so. Linux only. Default: 0 (no limit).
	MemoryBytes uint64
	// OnRestart is called each time the process is started again after
	// it died or failed to start (not for the first start). It must not
	// block. Default: nothing.
	OnRestart func()
}

func (c *Config) validate() error {
	if c.Name == "" {
		return errors.New("a plugin name is required")
	}
	if c.Path == "" {
		return fmt.Errorf("plugin %q: a command path is required", c.Name)
	}
	if c.StateDir == "" {
		return fmt.Errorf("plugin %q: a state directory is required to pin the executable", c.Name)
	}
	if c.SHA256 == "" && !c.InsecureSkipChecksum {
		return fmt.Errorf("plugin %q: sha256 is required; run `svidagent plugin hash %s` and set sha256 in the plugin block (or insecure_skip_checksum = true for development)", c.Name, c.Path)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "subproc", "plugin", c.Name)
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Services == nil {
		c.Services = &services.Services{}
	}
	if c.Services.Logger == nil {
		s := *c.Services
		s.Logger = services.NewLogger(c.Logger, c.Name, 0)
		c.Services = &s
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = DefaultRestartBackoff
	}
	if c.MaxRestartBackoff <= 0 {
		c.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	return nil
}

// Plugin is a go-plugin subprocess plugin. It implements adapter.Conn.
// It is safe for concurrent use: calls run concurrently over one gRPC
// connection, and a restart is done by one caller while the others wait
// for it.
type Plugin struct {
	cfg    Config
	log    *slog.Logger
	stderr *lineLogger
	stdout *lineLogger
	now    func() time.Time

	startLock chan struct{} // a 1-buffered lock held while starting

	mu        sync.Mutex
	inst      *instance // nil while down
	closed    bool
	sha256    string // verified at Open; restarts re-verify the copy
	pinned    string
	describe  *pluginv1.DescribeRequest // last successful, broker id cleared
	configure *pluginv1.ConfigureRequest
	failures  int // consecutive crashes and failed starts
	lastErr   error
	retryAt   time.Time

	closeOnce  sync.Once
	nsWarnOnce sync.Once
}

var _ adapter.Conn = (*Plugin)(nil)

// instance is one running plugin process.
type instance struct {
	client   *plugin.Client
	run      *procRunner
	conn     *grpc.ClientConn
	brokerID uint32
	serving  sync.WaitGroup // the broker's AcceptAndServe goroutine
	killOnce sync.Once
}

// Open pins the executable, starts the plugin and returns it. It fails on
// a checksum mismatch, with both hashes in the error, and when the plugin
// does not start. ctx bounds only the wait for the start.
func Open(ctx context.Context, cfg Config) (*Plugin, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("opening plugin: %w", err)
	}
	p := &Plugin{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       time.Now,
		startLock: make(chan struct{}, 1),
	}
	limit := newOutputLimit(time.Now)
	p.stderr = &lineLogger{log: cfg.Services.Logger.Line, stream: "stderr", limit: limit}
	p.stdout = &lineLogger{log: cfg.Services.Logger.Line, stream: "stdout", limit: limit}
	want := cfg.SHA256
	if cfg.InsecureSkipChecksum {
		want = ""
	}
	pinned, sum, err := pin(cfg.Path, want, cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("opening plugin %q: %w", cfg.Name, err)
	}
	p.pinned, p.sha256 = pinned, sum
	type result struct {
		inst *instance
		err  error
	}
	done := make(chan result, 1)
	go func() {
		inst, err := p.start(nil, nil, true)
		done <- result{inst, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("opening plugin %q: %w", cfg.Name, r.err)
		}
		p.inst = r.inst
		return p, nil
	case <-ctx.Done():
		go func() { // the start ends within StartTimeout
			if r := <-done; r.inst != nil {
				p.teardown(r.inst)
			}
		}()
		return nil, fmt.Errorf("opening plugin %q: %w", cfg.Name, ctx.Err())
	}
}

// SHA256 returns the hex sha256 of the executable that runs.
func (p *Plugin) SHA256() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sha256
}

// Pid returns the pid of the plugin process, which is also its process
// group id, or 0 while it is down. For diagnostics and tests.
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inst == nil {
		return 0
	}
	return p.inst.run.pid
}

// Invoke implements adapter.Conn. A Describe request gets the broker id
// of the host services set. When the process has died, the call restarts
// it (after the backoff, unless the circuit breaker is open) and replays
// the last successful Describe and Configure first.
func (p *Plugin) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	inst, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	if d, ok := req.(*pluginv1.DescribeRequest); ok && method == adapter.MethodDescribe {
		d = proto.Clone(d).(*pluginv1.DescribeRequest)
		d.HostBrokerId = inst.brokerID
		req = d
	}
	err = inst.conn.Invoke(ctx, method, req, resp)
	if err == nil {
		p.answered(method, req)
		return nil
	}
	st := status.Convert(err)
	// A dead process shows as UNAVAILABLE; a call in flight on an
	// instance another caller found dead and tore down, as CANCELLED.
	if ctx.Err() == nil && (st.Code() == codes.Unavailable || st.Code() == codes.Canceled) && !p.healthy(inst) {
		p.crashed(inst, err)
		return status.Errorf(codes.Unavailable, "plugin %q exited during %s (%s); it is restarted on the next call", p.cfg.Name, method, st.Message())
	}
	if ctx.Err() == nil {
		p.answered("", nil) // the plugin answered, if with an error
	}
	return err
}

// healthy reports whether inst's process runs and its gRPC server answers
// go-plugin's health check.
func (p *Plugin) healthy(inst *instance) bool {
	if inst.run.Exited() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(inst.conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err == nil
}

// answered records a call the plugin answered: it resets the failure count
// and remembers a successful Describe or Configure for replay.
func (p *Plugin) answered(method string, req proto.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures, p.lastErr, p.retryAt = 0, nil, time.Time{}
	switch method {
	case adapter.MethodDescribe:
		d := proto.Clone(req).(*pluginv1.DescribeRequest)
		d.HostBrokerId = 0
		p.describe = d
	case adapter.MethodConfigure:
		if c, ok := req.(*pluginv1.ConfigureRequest); ok {
			p.configure = proto.Clone(c).(*pluginv1.ConfigureRequest)
		}
	}
}

// crashed takes inst down after a call found it dead.
func (p *Plugin) crashed(inst *instance, cause error) {
	p.mu.Lock()
	mine := p.inst == inst
	if mine {
		p.inst = nil
		p.failLocked(fmt.Errorf("plugin process exited: %w", cause))
	}
	p.mu.Unlock()
	if mine {
		p.log.Warn("plugin process died; restarting it on the next call", "pid", inst.run.pid, "error", cause)
		p.teardown(inst)
	}
}

// failLocked counts a failure and sets when the next start may be tried.
func (p *Plugin) failLocked(err error) {
	p.failures++
	p.lastErr = err
	switch {
	case p.failures >= p.cfg.BreakerThreshold:
		p.retryAt = p.now().Add(p.cfg.BreakerCooldown)
	case p.failures <= 1:
		p.retryAt = time.Time{}
	default:
		d := p.cfg.RestartBackoff << (p.failures - 2)
		if d > p.cfg.MaxRestartBackoff || d <= 0 {
			d = p.cfg.MaxRestartBackoff
		}
		p.retryAt = p.now().Add(d)
	}
}

func (p *Plugin) downErrLocked() error {
	if p.failures >= p.cfg.BreakerThreshold {
		return status.Errorf(codes.Unavailable,
			"plugin %q failed %d times in a row (last: %v); circuit breaker open: calls fail fast until %s, then one restart is tried; see the plugin's log lines",
			p.cfg.Name, p.failures, p.lastErr, p.retryAt.Format(time.RFC3339))
	}
	return status.Errorf(codes.Unavailable, "plugin %q is down after %d consecutive failures (last: %v); the next restart is tried in %s",
		p.cfg.Name, p.failures, p.lastErr, p.retryAt.Sub(p.now()).Round(time.Millisecond))
}

func (p *Plugin) closedErr() error {
	return status.Errorf(codes.FailedPrecondition, "plugin %q is closed", p.cfg.Name)
}

// acquire returns the running instance, restarting the plugin if it is
// down and its backoff is over.
func (p *Plugin) acquire(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, p.closedErr()
	}
	if inst := p.inst; inst != nil && !inst.run.Exited() {
		p.mu.Unlock()
		return inst, nil
	}
	p.mu.Unlock()

	select {
	case p.startLock <- struct{}{}:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-p.startLock }()

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, p.closedErr()
	}
	dead := p.inst
	if dead != nil && !dead.run.Exited() {
		p.mu.Unlock()
		return dead, nil // another caller restarted it
	}
	p.inst = nil
	if dead != nil {
		p.failLocked(fmt.Errorf("plugin process exited: %v", dead.run.cmd.ProcessState))
	}
	if p.now().Before(p.retryAt) {
		err := p.downErrLocked()
		p.mu.Unlock()
		if dead != nil {
			p.teardown(dead)
		}
		return nil, err
	}
	describe, configure := p.describe, p.configure
	p.mu.Unlock()
	if dead != nil {
		p.log.Warn("plugin process exited; restarting it", "pid", dead.run.pid, "state", dead.run.cmd.ProcessState.String())
		p.teardown(dead)
	}

	if p.cfg.OnRestart != nil {
		p.cfg.OnRestart()
	}
	inst, err := p.start(describe, configure, false)

	p.mu.Lock()
	if err != nil {
		p.failLocked(err)
		failures := p.failures
		p.mu.Unlock()
		p.log.Error("restarting plugin failed", "error", err, "consecutive_failures", failures)
		return nil, status.Errorf(codes.Unavailable, "restarting plugin %q: %v", p.cfg.Name, err)
	}
	if p.closed { // Close ran during the start and waits for the start lock
		p.mu.Unlock()
		p.teardown(inst)
		return nil, p.closedErr()
	}
	p.inst = inst
	p.mu.Unlock()
	return inst, nil
}

// start pins (re-verifying the copy unless pinned is set: Open pinned it
// just now), starts the process, connects, serves the host services on the
// broker and replays describe and configure.
func (p *Plugin) start(describe *pluginv1.DescribeRequest, configure *pluginv1.ConfigureRequest, pinned bool) (*instance, error) {
	if p.cfg.InsecureSkipChecksum {
		p.log.Warn("starting a plugin without verifying its checksum (insecure_skip_checksum = true); set sha256 for production use", "path", p.cfg.Path)
	}
	p.mu.Lock()
	path, sum := p.pinned, p.sha256
	p.mu.Unlock()
	ok := pinned
	if !ok {
		var err error
		if ok, err = pinnedOK(path, sum); err != nil {
			return nil, err
		}
	}
	if !ok {
		want := sum
		if p.cfg.InsecureSkipChecksum {
			want = ""
		}
		var err error
		if path, sum, err = pin(p.cfg.Path, want, p.cfg.StateDir); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.pinned, p.sha256 = path, sum
		p.mu.Unlock()
	}

	inst := &instance{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{ProtocolVersion: abi.GoPluginProtocolVersion,
			MagicCookieKey: abi.GoPluginMagicCookieKey, MagicCookieValue: abi.GoPluginMagicCookieValue},
		Plugins: plugin.PluginSet{abi.GoPluginName: hostPlugin{}},
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			cmd.Path, cmd.Args, cmd.Err = path, []string{path}, nil
			r := newProcRunner(cmd, os.Getenv(EnvPIDNamespace) != "off", p.noNamespace)
			inst.run = r
			return r, nil
		},
		// The plugin's socket goes under the state directory, not $TMPDIR.
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: socketBase(p.cfg.StateDir)},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     p.cfg.StartTimeout,
		// go-plugin's own log is off: the plugin's stderr comes through
		// Stderr, unparsed, and is parsed by lineLogger.
		Logger:     hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
		Stderr:     p.stderr,
		SyncStderr: p.stderr,
		SyncStdout: p.stdout,
	})
	inst.client = client
	fail := func(what string, err error) (*instance, error) {
		p.teardown(inst)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rpc, err := client.Client()
	if err != nil {
		// go-plugin's messages span lines; the log wants one.
		p.teardown(inst)
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		if strings.HasPrefix(msg, "timeout while waiting") {
			msg += fmt.Sprintf(" (no go-plugin handshake within start_timeout %v; the process was killed)", p.cfg.StartTimeout)
		}
		return nil, fmt.Errorf("starting the plugin process: %s%s", msg, inst.run.endedNote())
	}
	if p.cfg.MemoryBytes > 0 {
		// After the handshake: the Go runtime reserves its address space
		// at start, far beyond what it uses (see Config.MemoryBytes).
		limit, err := limitAddressSpace(inst.run.pid, p.cfg.MemoryBytes)
		if err != nil {
			return fail("applying the memory limit", err)
		}
		p.log.Debug("plugin memory limited", "pid", inst.run.pid, "mechanism", "RLIMIT_AS", "growth_bytes", p.cfg.MemoryBytes, "rlimit_as", limit)
	}
	raw, err := rpc.Dispense(abi.GoPluginName)
	if err != nil {
		return fail("connecting to the plugin", err)
	}
	h := raw.(*clientHandle)
	inst.conn = h.conn
	inst.brokerID = h.broker.NextId()
	// Wait until the broker accepted, so that a teardown right after the
	// start does not race AcceptAndServe's Accept (which would log through
	// the standard logger).
	accepted := make(chan struct{})
	inst.serving.Add(1)
	go func() {
		defer inst.serving.Done()
		h.broker.AcceptAndServe(inst.brokerID, func(opts []grpc.ServerOption) *grpc.Server {
			close(accepted)
			return p.hostServer(opts)
		})
	}()
	select {
	case <-accepted:
	case <-time.After(p.cfg.StartTimeout):
		return fail("serving the host services", errors.New("the go-plugin broker did not accept in time"))
	}
	p.log.Debug("plugin started", "pid", inst.run.pid, "sha256", sum, "pinned", path)

	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartTimeout)
	defer cancel()
	if describe != nil {
		d := proto.Clone(describe).(*pluginv1.DescribeRequest)
		d.HostBrokerId = inst.brokerID
		if err := inst.conn.Invoke(ctx, adapter.MethodDescribe, d, &pluginv1.DescribeResponse{}); err != nil {
			return fail("replaying Describe", err)
		}
	}
	if configure != nil {
		if err := inst.conn.Invoke(ctx, adapter.MethodConfigure, configure, &pluginv1.ConfigureResponse{}); err != nil {
			return fail("replaying Configure", err)
		}
	}
	return inst, nil
}

// hostServer is the gRPC server of the host services on the broker.
func (p *Plugin) hostServer(opts []grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(opts...)
	hostv1.RegisterLoggerServer(s, p.cfg.Services.Logger)
	if p.cfg.Services.HTTP != nil {
		hostv1.RegisterHTTPServer(s, p.cfg.Services.HTTP)
	} else {
		hostv1.RegisterHTTPServer(s, deniedHTTP{svc: p.cfg.Services})
	}
	if p.cfg.Services.Metrics != nil {
		hostv1.RegisterMetricsServer(s, p.cfg.Services.Metrics)
	}
	return s
}

// deniedHTTP answers HTTP requests of a plugin without the grant.
type deniedHTTP struct {
	hostv1.UnimplementedHTTPServer
	svc *services.Services
}

func (d deniedHTTP) Request(ctx context.Context, _ *hostv1.HTTPRequest) (*hostv1.HTTPResponse, error) {
	code, msg, _ := d.svc.Handle(ctx, services.MethodHTTPRequest, nil)
	return nil, status.Error(codes.Code(code), msg)
}

// teardown kills inst's process group and waits until the process, the
// client's goroutines and the host services server are gone.
func (p *Plugin) teardown(inst *instance) {
	inst.killOnce.Do(func() {
		if inst.run != nil {
			_ = inst.run.Kill(context.Background())
		}
		inst.client.Kill()
		inst.serving.Wait()
		if inst.run != nil {
			inst.run.locked.Wait()
		}
		p.stderr.Flush()
		p.stdout.Flush()
	})
}

// noNamespace warns, once per plugin, that the plugin runs without its own
// pid namespace.
func (p *Plugin) noNamespace(err error) {
	p.nsWarnOnce.Do(func() {
		p.log.Warn("the plugin runs without its own pid namespace: processes it spawns in a new session may outlive an agent killed with SIGKILL; allow user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, AppArmor's restrict_unprivileged_userns) or run the agent as root",
			"error", err.Error())
	})
}

// Close kills the plugin's process group and waits for it. It does not
// call the plugin's Close method (the adapter does that first). It is
// idempotent, and waits for a start in progress to end.
func (p *Plugin) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		inst := p.inst
		p.inst = nil
		p.mu.Unlock()
		if inst != nil {
			p.teardown(inst)
		}
		p.startLock <- struct{}{} // wait for a start in progress
		<-p.startLock
		p.cfg.Services.Logger.Flush(context.Background())
	})
	return nil
}

// hostPlugin is the host side of the go-plugin plugin "svidagent".
type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

type clientHandle struct {
	broker *plugin.GRPCBroker
	conn   *grpc.ClientConn
}

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the agent does not serve the svidagent plugin")
}

func (hostPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &clientHandle{broker: b, conn: c}, nil
}
