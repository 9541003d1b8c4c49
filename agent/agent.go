package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/metrics"
	"github.com/svidagent/svidagent/internal/pluginhost"
	"github.com/svidagent/svidagent/internal/registry"

	// The built-in plugins register themselves.
	_ "github.com/svidagent/svidagent/plugins/dev"
	_ "github.com/svidagent/svidagent/plugins/exec"
	_ "github.com/svidagent/svidagent/plugins/files"
	_ "github.com/svidagent/svidagent/plugins/filesissuer"
	_ "github.com/svidagent/svidagent/plugins/signal"
	_ "github.com/svidagent/svidagent/plugins/workloadapi"
)

// Config is the agent's configuration: see the README's configuration
// reference. LoadConfig reads one from agent.hcl or helper.conf.
type Config = config.Config

// LoadConfig reads a configuration file in either schema: the native
// agent.hcl or spiffe-helper's helper.conf. Its errors carry
// hcl.Diagnostics with file:line:col.
func LoadConfig(path string) (*Config, error) { return config.Load(path) }

// Option changes how an Agent runs.
type Option func(*Agent)

// WithLogger sets the logger. Default: a logger that discards.
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithHealthListener serves health on ln instead of listening on the
// configured address. The agent closes it.
func WithHealthListener(ln net.Listener) Option { return func(a *Agent) { a.healthLn = ln } }

// WithRetry sets the jittered exponential backoff bounds for failed issues
// and writes. Default: 500ms to 30s.
func WithRetry(min, max time.Duration) Option {
	return func(a *Agent) { a.retryMin, a.retryMax = min, max }
}

// Agent keeps the configured credentials fresh. Create it with New.
type Agent struct {
	cfg          *Config
	log          *slog.Logger
	healthLn     net.Listener
	retryMin     time.Duration
	retryMax     time.Duration
	issueTimeout time.Duration
	writeTimeout time.Duration
	wedgeAfter   time.Duration
	version      string           // WithVersion
	metrics      *metrics.Metrics // the agent's own registry (status.go)
	externals    externalMeta     // runtime, sha256 and restarts of external plugins (status.go)

	loops   loops
	mu      sync.Mutex
	runners []*svidRunner
	built   *plugins
}

// New returns an agent for cfg. Nothing starts until Run or Fetch.
func New(cfg *Config, opts ...Option) *Agent {
	a := &Agent{
		cfg:          cfg,
		log:          slog.New(slog.DiscardHandler),
		retryMin:     500 * time.Millisecond,
		retryMax:     30 * time.Second,
		issueTimeout: 30 * time.Second,
		writeTimeout: 30 * time.Second,
		wedgeAfter:   2 * time.Minute,
	}
	for _, o := range opts {
		o(a)
	}
	a.metrics = metrics.New(a.version)
	return a
}

// plugins are the instances built from the config.
type plugins struct {
	issuers   map[string]hostapi.Issuer
	externals map[string]*pluginhost.Plugin // by plugin block name, shared
	all       []any                         // every instance, in build order, for Start and Close
}

// buildPlugin builds a built-in from the registry, or opens the external
// plugin p refers to; both meet at the hostapi interfaces.
func (a *Agent) buildPlugin(ctx context.Context, kind hostapi.Kind, p config.Plugin) (any, error) {
	if p.External != nil {
		inst, err := a.openExternal(ctx, kind, p.External)
		if err != nil {
			return nil, fmt.Errorf("building %s %q: %w", kind, p.Name, err)
		}
		return inst, nil
	}
	m, ok := registry.Lookup(kind, p.Type)
	if !ok {
		return nil, fmt.Errorf("building %s %q: no %s type %q", kind, p.Name, kind, p.Type)
	}
	inst, err := m.New(p.Config, registry.Env{
		Logger: a.log.With("component", string(kind), "plugin", p.Name),
		Name:   p.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("building %s %q: %w", kind, p.Name, err)
	}
	return inst, nil
}

// build creates every plugin instance and the svid runners. On error it
// closes what it built.
func (a *Agent) build(ctx context.Context) (err error) {
	b := &plugins{issuers: map[string]hostapi.Issuer{}, externals: map[string]*pluginhost.Plugin{}}
	a.built = b
	defer func() {
		if err != nil {
			a.closePlugins()
		}
	}()
	for _, p := range a.cfg.Issuers {
		inst, err := a.buildPlugin(ctx, hostapi.KindIssuer, p)
		if err != nil {
			return err
		}
		if p.External == nil {
			b.all = append(b.all, inst)
		}
		iss, ok := inst.(hostapi.Issuer)
		if !ok {
			return fmt.Errorf("building issuer %q: %T is not an issuer", p.Name, inst)
		}
		b.issuers[p.Name] = iss
	}
	for _, s := range a.cfg.SVIDs {
		r, err := a.buildRunner(ctx, s)
		if err != nil {
			return err
		}
		a.runners = append(a.runners, r)
	}
	return nil
}

func (a *Agent) buildRunner(ctx context.Context, s config.SVID) (*svidRunner, error) {
	log := a.log.With("component", "svid", "svid", s.Name)
	iss, ok := a.built.issuers[s.Issuer]
	if !ok {
		return nil, fmt.Errorf("building svid %q: no issuer %q", s.Name, s.Issuer)
	}
	r := &svidRunner{a: a, cfg: s, issuer: iss, log: log, wake: make(chan struct{}, 1)}
	if s.SPIFFEID != "" {
		id, err := spiffeid.FromString(s.SPIFFEID)
		if err != nil {
			return nil, fmt.Errorf("building svid %q: spiffe_id: %w", s.Name, err)
		}
		r.id = id
	}
	if _, push := iss.(hostapi.Watcher); !push && s.X509 && r.id.IsZero() {
		return nil, fmt.Errorf("building svid %q: issuer %q signs requests, so spiffe_id is required; add spiffe_id = \"spiffe://<trust domain>/<path>\"", s.Name, s.Issuer)
	}
	if r.cfg.RenewFraction <= 0 || r.cfg.RenewFraction >= 1 {
		r.cfg.RenewFraction = config.DefaultRenewFraction
	}
	for _, w := range s.Writers {
		inst, err := a.buildPlugin(ctx, hostapi.KindWriter, w)
		if err != nil {
			return nil, fmt.Errorf("svid %q: %w", s.Name, err)
		}
		if w.External == nil {
			a.built.all = append(a.built.all, inst)
		}
		wr, ok := inst.(hostapi.Writer)
		if !ok {
			return nil, fmt.Errorf("svid %q: building writer %q: %T is not a writer", s.Name, w.Name, inst)
		}
		r.outputs = append(r.outputs, &output{name: w.Name, writer: wr})
	}
	for _, n := range s.Notifiers {
		inst, err := a.buildPlugin(ctx, hostapi.KindNotifier, n.Plugin)
		if err != nil {
			return nil, fmt.Errorf("svid %q: %w", s.Name, err)
		}
		if n.External == nil {
			a.built.all = append(a.built.all, inst)
		}
		nt, ok := inst.(hostapi.Notifier)
		if !ok {
			return nil, fmt.Errorf("svid %q: building notifier %q: %T is not a notifier", s.Name, n.Name, inst)
		}
		on, timeout := n.On, n.Timeout
		if on == 0 {
			on = hostapi.ChangedX509
		}
		if timeout <= 0 {
			timeout = config.DefaultNotifyTimeout
		}
		r.notifiers = append(r.notifiers, &notifierRunner{
			name: n.Name, svid: s.Name, notifier: nt, on: on, timeout: timeout, a: a,
			log:  log.With("component", "notifier", "plugin", n.Name),
			wake: make(chan struct{}, 1),
		})
	}
	return r, nil
}

// startPlugins starts every plugin with the optional Lifecycle.
func (a *Agent) startPlugins(ctx context.Context) error {
	for _, inst := range a.built.all {
		if lc, ok := inst.(hostapi.Lifecycle); ok {
			if err := lc.Start(ctx); err != nil {
				return fmt.Errorf("starting plugin %T: %w", inst, err)
			}
		}
	}
	return nil
}

// closePlugins stops and closes every built plugin, in reverse order.
func (a *Agent) closePlugins() {
	if a.built == nil {
		return
	}
	for i := len(a.built.all) - 1; i >= 0; i-- {
		inst := a.built.all[i]
		if lc, ok := inst.(hostapi.Lifecycle); ok {
			lc.Stop()
		}
		if c, ok := inst.(io.Closer); ok {
			if err := c.Close(); err != nil {
				a.log.Warn("closing plugin failed", "plugin", fmt.Sprintf("%T", inst), "error", err)
			}
		}
	}
	a.built.all = nil
}

// Run keeps the credentials fresh until ctx is done, then stops every
// loop and plugin (a command started by the exec notifier is stopped and
// reaped) and returns nil. With daemon_mode = false it fetches once
// instead, as Fetch does. It returns an error when the configuration
// cannot be built or the health listener cannot start.
func (a *Agent) Run(ctx context.Context) error {
	if !a.cfg.DaemonMode {
		return a.Fetch(ctx)
	}
	a.mu.Lock()
	if a.built != nil {
		a.mu.Unlock()
		return errors.New("running agent: Run was called twice")
	}
	err := a.build(ctx)
	a.mu.Unlock()
	if err != nil {
		return err
	}
	defer a.closePlugins()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.startPlugins(ctx); err != nil {
		return err
	}

	var srv *http.Server
	if a.cfg.Health.Enabled || a.healthLn != nil {
		ln := a.healthLn
		if ln == nil {
			if ln, err = net.Listen("tcp", a.cfg.Health.Address); err != nil {
				return fmt.Errorf("starting health listener on %q: %w; choose a free address in the health block", a.cfg.Health.Address, err)
			}
		}
		srv = &http.Server{Handler: a.HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("health listener failed", "component", "health", "error", err)
			}
		}()
		a.log.Info("health listener started", "component", "health", "address", ln.Addr().String())
	}

	for _, r := range a.runners {
		a.startRunner(ctx, r)
	}
	a.log.Info("agent running", "svids", len(a.runners))
	<-ctx.Done()
	a.log.Info("agent stopping")
	a.loops.stop()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	return nil
}

func (a *Agent) startRunner(ctx context.Context, r *svidRunner) {
	name := "svid " + r.cfg.Name
	a.loops.goLoop(name+" worker", func(l *loop) { r.work(ctx, l) })
	for _, n := range r.notifiers {
		a.loops.goLoop(name+" notifier "+n.name, func(l *loop) { n.run(ctx, l) })
	}
	w, push := r.issuer.(hostapi.Watcher)
	if push {
		if r.cfg.X509 || r.cfg.JWTBundles {
			req := &hostapi.IssueRequest{SPIFFEID: r.id, Hint: r.cfg.Hint, All: r.cfg.All, X509: r.cfg.X509, JWTBundles: r.cfg.JWTBundles}
			a.loops.goLoop(name+" watch", func(*loop) { r.watchSource(ctx, w, req) })
		}
		if len(r.cfg.JWT) > 0 {
			a.loops.goLoop(name+" jwt", func(l *loop) { r.pullJWT(ctx, l, false) })
		}
		return
	}
	if r.cfg.X509 {
		a.loops.goLoop(name+" x509", func(l *loop) { r.pullX509(ctx, l, r.cfg.JWTBundles) })
	}
	if len(r.cfg.JWT) > 0 || (!r.cfg.X509 && r.cfg.JWTBundles) {
		a.loops.goLoop(name+" jwt", func(l *loop) { r.pullJWT(ctx, l, r.cfg.JWTBundles && !r.cfg.X509) })
	}
}

// metricsErr counts an error of the svid block at stage (metrics.Stage*).
func (a *Agent) metricsErr(svid, stage string) { a.metrics.Error(svid, stage) }
