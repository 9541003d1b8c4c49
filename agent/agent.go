package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/metrics"
	"github.com/svidagent/svidagent/internal/plugin/load"
	"github.com/svidagent/svidagent/internal/registry"

	// The built-in plugins register themselves.
	_ "github.com/svidagent/svidagent/plugins/dev"
	_ "github.com/svidagent/svidagent/plugins/exec"
	_ "github.com/svidagent/svidagent/plugins/files"
	_ "github.com/svidagent/svidagent/plugins/filewatch"
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

// WithOnDelivery has f called after each delivery of an svid block's
// credentials (at least one writer succeeded), before its notifiers are
// told; f must not block. `svidagent exec` starts its command once the
// agent is ready.
func WithOnDelivery(f func(svid string)) Option { return func(a *Agent) { a.onDelivery = f } }

// WithOnSettled has f called once, on a goroutine of its own, when Run's
// start-up has settled: credentials have been delivered and no plugin of
// the first build is still starting (or none was to start). f may take its
// time. The svidagent binary gives start-up memory back to the system
// then.
func WithOnSettled(f func()) Option { return func(a *Agent) { a.onSettled = f } }

// WithRetry sets the jittered exponential backoff bounds for failed issues
// and writes. Default: 500ms to 30s.
func WithRetry(min, max time.Duration) Option {
	return func(a *Agent) { a.retryMin, a.retryMax = min, max }
}

// Agent keeps the configured credentials fresh. Create it with New.
type Agent struct {
	onDelivery   func(svid string)
	onSettled    func()      // WithOnSettled
	settle       sync.Once   // calls onSettled
	delivered    atomic.Bool // some svid block delivered; see maybeSettled
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
	starts       chan struct{}    // a slot per plugin starting in the background: runtime.NumCPU()
	// openConn opens an external plugin's runtime: load.Open, or a test's.
	openConn func(context.Context, *config.External, load.Env) (load.Conn, error)

	// Reload; see reload.go.
	configPath     string
	reloadFn       func() (*Config, error)
	reloadDebounce time.Duration
	reloadMu       sync.Mutex // serializes Reload

	loops   loops // the agent's own goroutines (the config watcher)
	mu      sync.Mutex
	runners []*svidRunner
	built   *plugins
	runCtx  context.Context // set while Run runs; nil otherwise
	health  *healthServer
	reload  ReloadStatus
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

		reloadDebounce: 250 * time.Millisecond,
		starts:         make(chan struct{}, runtime.NumCPU()),
		openConn:       load.Open,
	}
	for _, o := range opts {
		o(a)
	}
	a.metrics = metrics.New(a.version)
	return a
}

// plugins are the instances built from the config.
type plugins struct {
	cfg       *Config
	issuers   map[string]hostapi.Issuer
	externals map[string]*external // by plugin block name, shared
	// background is set for the agent's first start: writer and notifier
	// plugins start in the background (openExternal).
	background bool
	all        []any // every instance, in build order, for Start and Close

	// For reload: what each instance was built from, so that the next
	// build can keep it when that is unchanged.
	builtins map[string]builtin  // by instanceKey
	extState map[string]extState // by plugin block name
	fresh    []any               // instances this build created (not kept from the previous one)
	kept     map[string]bool     // instanceKeys and "plugin/<name>" kept from the previous build
	problems []error             // kept instances whose file no longer matches (reload.go)
}

func newPlugins(cfg *Config) *plugins {
	return &plugins{
		cfg: cfg, issuers: map[string]hostapi.Issuer{}, externals: map[string]*external{},
		builtins: map[string]builtin{}, extState: map[string]extState{}, kept: map[string]bool{},
	}
}

// buildPlugin builds a built-in from the registry, or opens the external
// plugin p refers to; both meet at the hostapi interfaces. With prev (a
// reload), an instance whose config is unchanged is kept rather than
// built again; key names the instance across builds.
func (a *Agent) buildPlugin(ctx context.Context, b, prev *plugins, kind hostapi.Kind, key string, p config.Plugin) (any, error) {
	if p.External != nil {
		inst, err := a.openExternal(ctx, b, prev, kind, p.External)
		if err != nil {
			return nil, fmt.Errorf("building %s %q: %w", kind, p.Name, err)
		}
		return inst, nil
	}
	if prev != nil {
		if old, ok := prev.builtins[key]; ok && old.sameAs(p) {
			b.builtins[key] = old
			b.kept[key] = true
			b.all = append(b.all, old.inst)
			return old.inst, nil
		}
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
	b.builtins[key] = builtin{typ: p.Type, cfg: p.Config, inst: inst}
	b.fresh = append(b.fresh, inst)
	b.all = append(b.all, inst)
	return inst, nil
}

// build creates the plugin instances and svid runners of cfg. With prev
// and prevRunners (a reload), unchanged instances are kept, and so is the
// runner of an unchanged svid block. With background, writer and
// notifier plugins start in the background (openExternal). On error it
// closes what it created, and nothing it kept.
func (a *Agent) build(ctx context.Context, cfg *Config, prev *plugins, prevRunners []*svidRunner, background bool) (_ *plugins, _ []*svidRunner, err error) {
	b := newPlugins(cfg)
	b.background = background
	defer func() {
		if err != nil {
			a.closeInstances(b.fresh)
		}
	}()
	for _, p := range cfg.Issuers {
		inst, err := a.buildPlugin(ctx, b, prev, hostapi.KindIssuer, "issuer/"+p.Name, p)
		if err != nil {
			return nil, nil, err
		}
		iss, ok := inst.(hostapi.Issuer)
		if !ok {
			return nil, nil, fmt.Errorf("building issuer %q: %T is not an issuer", p.Name, inst)
		}
		b.issuers[p.Name] = iss
	}
	var runners []*svidRunner
	for _, s := range cfg.SVIDs {
		var old *svidRunner
		for _, r := range prevRunners {
			if r.src.Name == s.Name {
				old = r
			}
		}
		r, err := a.buildRunner(ctx, b, prev, old, s)
		if err != nil {
			return nil, nil, err
		}
		runners = append(runners, r)
	}
	return b, runners, nil
}

// buildRunner builds the runner of svid block s. With old, the block's
// runner in the previous build, it returns old itself when the block and
// every instance it uses are unchanged.
func (a *Agent) buildRunner(ctx context.Context, b, prev *plugins, old *svidRunner, s config.SVID) (*svidRunner, error) {
	log := a.log.With("component", "svid", "svid", s.Name)
	iss, ok := b.issuers[s.Issuer]
	if !ok {
		return nil, fmt.Errorf("building svid %q: no issuer %q", s.Name, s.Issuer)
	}
	r := &svidRunner{a: a, cfg: s, src: s, issuer: iss, log: log, wake: make(chan struct{}, 1)}
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
		inst, err := a.buildPlugin(ctx, b, prev, hostapi.KindWriter, instanceKey(s.Name, hostapi.KindWriter, w.Name), w)
		if err != nil {
			return nil, fmt.Errorf("svid %q: %w", s.Name, err)
		}
		wr, ok := inst.(hostapi.Writer)
		if !ok {
			return nil, fmt.Errorf("svid %q: building writer %q: %T is not a writer", s.Name, w.Name, inst)
		}
		r.outputs = append(r.outputs, &output{name: w.Name, writer: wr})
	}
	for _, n := range s.Notifiers {
		inst, err := a.buildPlugin(ctx, b, prev, hostapi.KindNotifier, instanceKey(s.Name, hostapi.KindNotifier, n.Name), n.Plugin)
		if err != nil {
			return nil, fmt.Errorf("svid %q: %w", s.Name, err)
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
			name: n.Name, svid: s.Name, notifier: nt, on: on, timeout: timeout, retryBackoff: n.RetryBackoff, a: a,
			log:  log.With("component", "notifier", "plugin", n.Name),
			wake: make(chan struct{}, 1),
		})
	}
	if old != nil && a.unchangedRunner(b, old, r) {
		return old, nil
	}
	// A plugin that starts in the background wakes the runners that use
	// it when it is ready.
	for _, o := range r.outputs {
		if x, ok := o.writer.(*external); ok {
			x.whenReady(r.pluginReady)
		}
	}
	for _, n := range r.notifiers {
		if x, ok := n.notifier.(*external); ok {
			x.whenReady(n.signal)
		}
	}
	return r, nil
}

// startPlugins starts every plugin in insts with the optional Lifecycle.
func (a *Agent) startPlugins(ctx context.Context, insts []any) error {
	for _, inst := range insts {
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
	a.mu.Lock()
	b := a.built
	a.mu.Unlock()
	if b == nil {
		return
	}
	a.closeInstances(b.all)
	b.all = nil
}

// closeInstances stops and closes insts, in reverse order.
func (a *Agent) closeInstances(insts []any) {
	for i := len(insts) - 1; i >= 0; i-- {
		inst := insts[i]
		if lc, ok := inst.(hostapi.Lifecycle); ok {
			lc.Stop()
		}
		if c, ok := inst.(io.Closer); ok {
			if err := c.Close(); err != nil {
				a.log.Warn("closing plugin failed", "plugin", fmt.Sprintf("%T", inst), "error", err)
			}
		}
	}
}

// buildOnce builds the configured plugins and runners for Run or Fetch; an
// agent starts once. With background (Run), writer and notifier plugins
// start in the background.
func (a *Agent) buildOnce(ctx context.Context, what string, background bool) (*plugins, []*svidRunner, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.built != nil {
		return nil, nil, fmt.Errorf("%s: the agent was already started", what)
	}
	b, runners, err := a.build(ctx, a.cfg, nil, nil, background)
	if err != nil {
		return nil, nil, err
	}
	a.built, a.runners = b, runners
	return b, runners, nil
}

// Run keeps the credentials fresh until ctx is done, then stops every
// loop and plugin (a command started by the exec notifier is stopped and
// reaped) and returns nil. With daemon_mode = false it fetches once
// instead, as Fetch does. It returns an error when the configuration
// cannot be built or the health listener cannot start. With
// WithConfigPath or WithReload, the configuration is reloaded while it
// runs: see Reload.
func (a *Agent) Run(ctx context.Context) error {
	if !a.cfg.DaemonMode {
		return a.Fetch(ctx)
	}
	b, runners, err := a.buildOnce(ctx, "running agent", true)
	if err != nil {
		return err
	}
	defer a.closePlugins()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.startPlugins(ctx, b.all); err != nil {
		return err
	}

	hs, err := a.startHealth(a.cfg.Health, nil)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.health = hs
	a.runCtx = ctx
	a.mu.Unlock()
	startWatch := a.watchConfig(ctx)
	for _, r := range runners {
		a.startRunner(ctx, r)
	}
	startWatch()
	a.log.Info("agent running", "svids", len(runners))
	<-ctx.Done()
	a.log.Info("agent stopping")
	// A reload in progress finishes first; none starts after.
	a.reloadMu.Lock()
	a.mu.Lock()
	a.runCtx = nil
	runners, hs = a.runners, a.health
	a.mu.Unlock()
	a.reloadMu.Unlock()
	a.loops.stop()
	for _, r := range runners {
		r.stop()
	}
	hs.shutdown()
	return nil
}

// startRunner starts r's loops under a context of its own, so that a
// reload can stop r alone (svidRunner.stop).
func (a *Agent) startRunner(ctx context.Context, r *svidRunner) {
	ctx, r.cancel = context.WithCancel(ctx)
	name := "svid " + r.cfg.Name
	r.loops.goLoop(name+" worker", func(l *loop) { r.work(ctx, l) })
	for _, n := range r.notifiers {
		r.loops.goLoop(name+" notifier "+n.name, func(l *loop) { n.run(ctx, l) })
	}
	w, push := r.issuer.(hostapi.Watcher)
	if push {
		if r.cfg.X509 || r.cfg.JWTBundles {
			req := &hostapi.IssueRequest{SPIFFEID: r.id, Hint: r.cfg.Hint, All: r.cfg.All, X509: r.cfg.X509, JWTBundles: r.cfg.JWTBundles}
			r.loops.goLoop(name+" watch", func(*loop) { r.watchSource(ctx, w, req) })
		}
		if len(r.cfg.JWT) > 0 {
			r.loops.goLoop(name+" jwt", func(l *loop) { r.pullJWT(ctx, l, false) })
		}
		return
	}
	if r.cfg.X509 {
		r.loops.goLoop(name+" x509", func(l *loop) { r.pullX509(ctx, l, r.cfg.JWTBundles) })
	}
	if len(r.cfg.JWT) > 0 || (!r.cfg.X509 && r.cfg.JWTBundles) {
		r.loops.goLoop(name+" jwt", func(l *loop) { r.pullJWT(ctx, l, r.cfg.JWTBundles && !r.cfg.X509) })
	}
}

// metricsErr counts an error of the svid block at stage (metrics.Stage*).
func (a *Agent) metricsErr(svid, stage string) { a.metrics.Error(svid, stage) }

// maybeSettled calls onSettled, once, when credentials have been delivered
// and no plugin of the running build is starting (WithOnSettled). It runs
// after a first delivery and after each background start ends.
func (a *Agent) maybeSettled() {
	if a.onSettled == nil || !a.delivered.Load() {
		return
	}
	a.mu.Lock()
	b := a.built
	a.mu.Unlock()
	if b == nil {
		return
	}
	for _, x := range b.externals {
		if x.firstStart() { // a plugin that failed holds nothing back
			return
		}
	}
	a.settle.Do(func() { go a.onSettled() })
}
