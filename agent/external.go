package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
)

// hostVersion is sent to plugins in Describe, for their messages.
const hostVersion = "svidagent"

// stateDir creates cfg's state directory, mode 0700, and returns it.
func (a *Agent) stateDir(cfg *Config) (string, error) {
	dir := cfg.StateDirectory()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating the state directory: %w; set state_dir to a writable directory", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("restricting the state directory: %w", err)
	}
	return dir, nil
}

// openExternal opens the plugin block e, once: every reference shares the
// instance. It returns the hostapi implementation of kind. With prev (a
// reload), the previous instance is kept when e is unchanged (keepExternal).
//
// In a background build (the agent's first start, see build), a writer or
// notifier plugin starts in a goroutine of its own, so that no delivery
// waits for it: the sha256 pin is checked at once, and the *external
// returned stands for the plugin until it is ready. An issuer plugin
// always starts before openExternal returns: every delivery of its svid
// blocks needs it, and what it is (a pushing or a signing issuer) is
// known only once it started.
func (a *Agent) openExternal(ctx context.Context, b, prev *plugins, kind hostapi.Kind, e *config.External) (any, error) {
	x, ok := b.externals[e.Name]
	if !ok && prev != nil {
		x, ok = a.keepExternal(b, prev, e)
	}
	if !ok {
		dir, err := a.stateDir(b.cfg)
		if err != nil {
			return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
		}
		x = &external{name: e.Name, kind: kind, ready: make(chan struct{})}
		if b.background && kind != hostapi.KindIssuer {
			if err := load.Check(e); err != nil {
				return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
			}
			sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			x.cancel = cancel
			go a.startInBackground(sctx, x, dir, kind, e)
		} else {
			p, err := a.startExternal(ctx, dir, kind, e)
			if err != nil {
				return nil, err
			}
			x.finish(p, nil)
		}
		b.externals[e.Name] = x
		b.all = append(b.all, x) // closed with the rest
		b.fresh = append(b.fresh, x)
		b.extState[e.Name] = extState{key: externalKey(e), sha256: fileSHA256(e.Path)}
	}
	if x.kind != kind {
		return nil, fmt.Errorf("loading plugin %q: it was opened as a %s, not a %s", e.Name, x.kind, kind)
	}
	if kind == hostapi.KindIssuer {
		// Started already: issuers never start in the background.
		p, err := x.plugin()
		if err != nil {
			return nil, err
		}
		return p.Issuer(), nil // startExternal checked it is one
	}
	return x, nil
}

// startFailedMsg is logged when a background start fails.
const startFailedMsg = "plugin failed to start; it is tried again with backoff until it starts, and at once when the configuration is reloaded"

// startInBackground starts x, the plugin block e, until it starts or ctx
// is done: a failed start is tried again with backoff (from the agent's
// retry minimum to ten times its maximum), so that a cause that goes away
// (a busy executable, a backend down at boot) does not leave the plugin's
// outputs without credentials until someone reloads. Each attempt takes a
// start slot (a.starts) while it runs, none while it waits.
func (a *Agent) startInBackground(ctx context.Context, x *external, dir string, kind hostapi.Kind, e *config.External) {
	defer a.maybeSettled() // after finish: this start has ended
	bo := backoff{min: a.retryMin, max: 10 * a.retryMax}
	for {
		select {
		case a.starts <- struct{}{}:
		case <-ctx.Done():
			x.finish(nil, fmt.Errorf("loading plugin %q: the agent stopped before it started", e.Name))
			return
		}
		p, err := a.startExternal(ctx, dir, kind, e)
		<-a.starts
		if err == nil || ctx.Err() != nil { // Close stopped it: no failure
			x.finish(p, err)
			return
		}
		wait := bo.next()
		n := x.failed(err, time.Now().Add(wait))
		a.log.Error(startFailedMsg, "component", string(kind), "plugin", e.Name, "error", err,
			"attempt", n, "retry_in", wait.Round(time.Millisecond).String())
		a.maybeSettled() // a failed plugin does not hold settling back
		if !sleepCtx(ctx, wait) {
			x.finish(nil, err)
			return
		}
	}
}

// startExternal loads and configures the plugin block e as a plugin of
// kind: the runtime compiles or starts it (load.Open), then the adapter
// negotiates, validates and configures it (adapter.Open).
func (a *Agent) startExternal(ctx context.Context, dir string, kind hostapi.Kind, e *config.External) (*adapter.Plugin, error) {
	c, err := a.openConn(ctx, e, load.Env{
		Logger:    a.log,
		StateDir:  dir,
		CacheDir:  filepath.Join(dir, "wasm-cache"),
		Metrics:   a.metrics,
		OnRestart: a.pluginRestarted(e.Name, e.Runtime),
	})
	if err != nil {
		return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
	}
	a.recordPin(e, c)
	var callTimeout time.Duration
	if e.Runtime == config.RuntimeCommand { // the WASM runtime enforces its own
		callTimeout = e.Limits.Timeout
		if callTimeout <= 0 {
			callTimeout = config.MaxPluginTimeout(kind)
		}
	}
	p, err := adapter.Open(ctx, c, adapter.Settings{
		Kind: kind, Name: e.Name, ConfigJSON: e.ConfigJSON, CallTimeout: callTimeout,
		Logger:      a.log.With("component", string(kind), "plugin", e.Name),
		HostVersion: hostVersion, HostServices: c.HostServices(),
	})
	if err != nil {
		return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
	}
	var wrong bool
	switch kind {
	case hostapi.KindIssuer:
		wrong = p.Issuer() == nil
	case hostapi.KindWriter:
		wrong = p.Writer() == nil
	case hostapi.KindNotifier:
		wrong = p.Notifier() == nil
	}
	if wrong {
		_ = p.Close()
		return nil, fmt.Errorf("loading plugin %q: it was opened as a %s, not a %s", e.Name, p.Info().Service, kind)
	}
	a.log.Info("plugin loaded", "component", string(kind), "plugin", e.Name, "runtime", e.Runtime,
		"name", p.Info().Name, "version", p.Info().Version, "service", p.Info().Service)
	return p, nil
}

// external is an opened plugin block, shared by every reference to it. It
// is the writer or notifier of its svid blocks: until its start ended,
// Write and Notify return a *notStartedError, which the svid runner and the
// notifier runner take as "not yet" rather than as a failure; they are
// woken when it is ready (whenReady) and deliver the latest rotation then.
type external struct {
	name   string
	kind   hostapi.Kind
	ready  chan struct{}      // closed when the start ended, either way
	cancel context.CancelFunc // stops a start in flight; nil when it started in the foreground

	// Set before ready is closed.
	p   *adapter.Plugin // the started plugin, or nil
	err error           // why it did not start

	mu       sync.Mutex
	onReady  []func()  // called once the start ended
	failures int       // failed attempts of a background start so far
	lastErr  error     // why the last attempt failed
	nextTry  time.Time // when the next attempt begins
}

// notStartedError is what an external plugin's Write and Notify return
// while it is starting (its first attempt), while its start is retried
// after a failure, or after its start was abandoned (the agent stopped,
// or a foreground start failed).
type notStartedError struct {
	plugin   string
	starting bool // the first attempt is under way
	retrying bool // an attempt failed; another begins at next
	attempts int
	next     time.Time
	err      error // why the (last) start failed
}

func (e *notStartedError) Error() string {
	switch {
	case e.starting:
		return fmt.Sprintf("plugin %q is still starting; it gets the latest credentials once it is ready", e.plugin)
	case e.retrying:
		return fmt.Sprintf("plugin %q failed to start (%d attempts; the next at %s, or at once on a configuration reload); it gets the latest credentials once it starts: %v",
			e.plugin, e.attempts, e.next.UTC().Format(time.RFC3339), e.err)
	}
	return fmt.Sprintf("plugin %q failed to start, so it gets nothing until it is fixed and the configuration reloaded: %v", e.plugin, e.err)
}

// pending reports whether the delivery it refused is owed to the plugin
// once it starts: while it starts or retries.
func (e *notStartedError) pending() bool { return e.starting || e.retrying }

func (e *notStartedError) Unwrap() error { return e.err }

// finish records the outcome of the start and calls the onReady hooks.
func (x *external) finish(p *adapter.Plugin, err error) {
	x.p, x.err = p, err
	close(x.ready)
	x.mu.Lock()
	hooks := x.onReady
	x.onReady = nil
	x.mu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// whenReady has f called once the start ended, unless it has already.
// f must not block.
func (x *external) whenReady(f func()) {
	x.mu.Lock()
	defer x.mu.Unlock()
	select {
	case <-x.ready:
	default:
		x.onReady = append(x.onReady, f)
	}
}

// failed records a failed attempt of a background start and the time of
// the next; it returns the number of attempts so far.
func (x *external) failed(err error, next time.Time) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.failures++
	x.lastErr, x.nextTry = err, next
	return x.failures
}

// firstStart reports whether the plugin's first attempt to start is under
// way: it is starting, and no attempt has failed yet.
func (x *external) firstStart() bool {
	if !x.starting() {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.failures == 0
}

// plugin returns the started plugin, or a *notStartedError.
func (x *external) plugin() (*adapter.Plugin, error) {
	select {
	case <-x.ready:
		if x.err != nil {
			return nil, &notStartedError{plugin: x.name, err: x.err}
		}
		return x.p, nil
	default:
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.failures > 0 {
			return nil, &notStartedError{plugin: x.name, retrying: true, attempts: x.failures, next: x.nextTry, err: x.lastErr}
		}
		return nil, &notStartedError{plugin: x.name, starting: true}
	}
}

// starting reports whether the start is still under way.
func (x *external) starting() bool {
	select {
	case <-x.ready:
		return false
	default:
		return true
	}
}

// Write implements hostapi.Writer.
func (x *external) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	p, err := x.plugin()
	if err != nil {
		return nil, err
	}
	return p.Writer().Write(ctx, set)
}

// Notify implements hostapi.Notifier.
func (x *external) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	p, err := x.plugin()
	if err != nil {
		return err
	}
	return p.Notifier().Notify(ctx, ev)
}

// Close stops a start in flight and waits for it, or closes the started
// plugin.
func (x *external) Close() error {
	if x.starting() && x.cancel != nil {
		x.cancel()
	}
	<-x.ready
	var err error
	if x.p != nil {
		err = x.p.Close()
	}
	if x.cancel != nil {
		x.cancel()
	}
	return err
}

// notStarted returns the *notStartedError inst reports when it is an
// external plugin that has not started, else nil.
func notStarted(inst any) *notStartedError {
	x, ok := inst.(*external)
	if !ok {
		return nil
	}
	_, err := x.plugin()
	ns, _ := err.(*notStartedError)
	return ns
}
