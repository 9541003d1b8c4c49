package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
)

// WithConfigPath makes Run reload the configuration from path (with
// LoadConfig) when the file changes and when Reload is called. The file's
// directory is watched, not the file, so that an editor's rename-on-save
// and a Kubernetes ConfigMap's ..data swap are seen; so are the
// directories of the external plugins' files. Events are debounced, and a
// reload happens only when the content of the file or of a plugin file
// changed. Default: no reloading (Reload returns an error).
func WithConfigPath(path string) Option {
	return func(a *Agent) { a.configPath = path }
}

// WithReload makes Reload take the new configuration from load, for an
// embedder without a file; nothing is watched. It takes precedence over
// WithConfigPath for Reload, and the file is still watched if both are set.
func WithReload(load func() (*Config, error)) Option {
	return func(a *Agent) { a.reloadFn = load }
}

// Results of a reload, as ReloadStatus.Result and the
// svidagent_config_reloads_total{result} label.
const (
	// ReloadOK: the new configuration was applied.
	ReloadOK = "ok"
	// ReloadInvalid: it did not load or validate; the old one keeps running.
	ReloadInvalid = "invalid"
	// ReloadFailed: it was valid, but building it failed (a plugin did not
	// load or configure, the health listener could not move), or it was
	// applied but a plugin file no longer matches its pin (the running
	// instance of that plugin was kept). See ReloadStatus.Error.
	ReloadFailed = "failed"
)

// ReloadStatus is the outcome of the configuration reloads.
type ReloadStatus struct {
	// Reloads counts the reloads attempted.
	Reloads uint64 `json:"reloads"`
	// Result is the last reload's: ReloadOK, ReloadInvalid or ReloadFailed.
	Result string `json:"result,omitempty"`
	// Error explains a Result other than ReloadOK, with file:line:col.
	Error string `json:"error,omitempty"`
	// LastAttempt and LastSuccess are when a reload last ran and last
	// applied a configuration.
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
}

// ReloadStatus returns the outcome of the reloads so far.
func (a *Agent) ReloadStatus() ReloadStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reload
}

// builtin is a built-in plugin instance and what it was built from.
type builtin struct {
	typ  string
	cfg  any
	inst any
}

// sameAs reports whether p would build the same instance: same module and
// the same decoded config.
func (b builtin) sameAs(p config.Plugin) bool {
	if p.External != nil || b.typ != p.Type {
		return false
	}
	// The same pointer is the same config, without reading it.
	x, y := reflect.ValueOf(b.cfg), reflect.ValueOf(p.Config)
	if x.Kind() == reflect.Pointer && y.Kind() == reflect.Pointer && x.Type() == y.Type() && x.Pointer() == y.Pointer() {
		return true
	}
	return reflect.DeepEqual(b.cfg, p.Config)
}

// instanceKey names a writer's or notifier's instance across builds: they
// belong to their svid block.
func instanceKey(svid string, kind hostapi.Kind, name string) string {
	return "svid/" + svid + "/" + string(kind) + "/" + name
}

// extState is what an external plugin instance was opened from.
type extState struct {
	key    string // externalKey
	sha256 string // of the file when it was opened; "" if unreadable
}

// externalKey is e's normalized settings: everything but the source
// ranges (runtime, path, sha256, config, limits, allow, ...).
func externalKey(e *config.External) string {
	b, err := json.Marshal(e)
	if err != nil {
		return "" // never equal to a key that marshalled
	}
	return string(b)
}

// fileSHA256 returns the lowercase hex sha256 of the file at path, or ""
// when it cannot be read.
func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// keepExternal returns the previous instance of plugin block e when its
// settings are unchanged and so is its file. A file that changed under an
// unchanged pin is not loaded: the running instance is kept and the
// mismatch is recorded in b.problems. Without a pin
// (insecure_skip_checksum), a changed file is loaded. An instance that
// failed to start is not kept: the reload starts it again.
func (a *Agent) keepExternal(b, prev *plugins, e *config.External) (*external, bool) {
	old, ok := prev.externals[e.Name]
	st := prev.extState[e.Name]
	if !ok || st.key != externalKey(e) {
		return nil, false
	}
	if _, err := old.plugin(); err != nil && !old.firstStart() {
		return nil, false // failed: a reload starts it afresh, at once
	}
	if cur := fileSHA256(e.Path); cur != st.sha256 {
		if e.InsecureSkipChecksum {
			return nil, false
		}
		got := cur
		if got == "" {
			got = "unreadable"
		}
		b.problems = append(b.problems, fmt.Errorf(
			"keeping plugin %q as it runs: its file %s changed (sha256 %s) but the configuration pins sha256 %s; set sha256 = %q in the plugin block to load the new file, or restore the old one",
			e.Name, e.Path, got, e.SHA256, got))
	}
	b.externals[e.Name] = old
	b.extState[e.Name] = st
	b.kept["plugin/"+e.Name] = true
	b.all = append(b.all, old)
	return old, true
}

// keptPlugin reports whether the instance of p (keyed key) was kept from
// the previous build.
func keptPlugin(b *plugins, key string, p config.Plugin) bool {
	if p.External != nil {
		return b.kept["plugin/"+p.External.Name]
	}
	return b.kept[key]
}

// svidKey is s's normalized settings, without source ranges.
func svidKey(s config.SVID) string {
	b, err := json.Marshal(s)
	if err != nil {
		return ""
	}
	return string(b)
}

// unchangedRunner reports whether old, the previous runner of r's block,
// can keep running as it is: the block's settings are the same and so is
// every instance it uses.
func (a *Agent) unchangedRunner(b *plugins, old, r *svidRunner) bool {
	if svidKey(old.src) != svidKey(r.src) || !keptIssuerOf(b, r.src.Issuer) {
		return false
	}
	for _, w := range r.src.Writers {
		if !keptPlugin(b, instanceKey(r.src.Name, hostapi.KindWriter, w.Name), w) {
			return false
		}
	}
	for _, n := range r.src.Notifiers {
		if !keptPlugin(b, instanceKey(r.src.Name, hostapi.KindNotifier, n.Name), n.Plugin) {
			return false
		}
	}
	return true
}

// keptIssuer reports whether the external issuer name was kept.
func keptIssuer(b *plugins, name string) bool {
	for _, p := range b.cfg.Issuers {
		if p.Name == name && p.External != nil {
			return b.kept["plugin/"+p.External.Name]
		}
	}
	return false
}

// sameRequest reports whether two svid blocks ask their issuer for the
// same credentials.
func sameRequest(x, y config.SVID) bool {
	return x.Issuer == y.Issuer && x.SPIFFEID == y.SPIFFEID && x.Hint == y.Hint && x.All == y.All &&
		x.X509 == y.X509 && x.JWTBundles == y.JWTBundles && x.TTL == y.TTL &&
		reflect.DeepEqual(x.JWT, y.JWT)
}

// carry hands a rebuilt block's runner what its predecessor old (stopped)
// held, when the issuer instance and the request are unchanged: the
// snapshot, the renewal schedule of a signing issuer, and the state of
// the writers and notifiers that were kept.
// The runner then delivers the snapshot at once: to its new writers and
// notifiers only, when old had delivered it, so that a kept exec notifier
// is not signalled and a kept writer not rewritten. Otherwise (a new
// issuer or request) the runner starts empty and its issuer is asked.
func (r *svidRunner) carry(old *svidRunner, keptIssuer bool) {
	if old == nil || !keptIssuer || !sameRequest(old.src, r.src) {
		return
	}
	old.mu.Lock()
	cur, pending, delivered, lastRot, renew := old.cur, old.pending, old.delivered, old.lastRot, maps.Clone(old.renew)
	outs := map[string]output{}
	for _, o := range old.outputs {
		outs[o.name] = *o
	}
	old.mu.Unlock()
	nots := map[string]*notifierRunner{}
	for _, n := range old.notifiers {
		nots[n.name] = n
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur, r.delivered, r.lastRot, r.renew = cur, delivered, lastRot, renew
	for _, o := range r.outputs {
		if prev, ok := outs[o.name]; ok && keptPlugin(r.a.builtPlugins(), instanceKey(r.src.Name, hostapi.KindWriter, o.name), pluginOf(r.src.Writers, o.name)) {
			o.written, o.lastWrite, o.lastErr = prev.written, prev.lastWrite, prev.lastErr
			o.spiffeID, o.serial, o.notAfter, o.paths, o.behind = prev.spiffeID, prev.serial, prev.notAfter, prev.paths, prev.behind
		}
	}
	for _, n := range r.notifiers {
		if prev, ok := nots[n.name]; ok && sameInstance(prev.notifier, n.notifier) {
			prev.mu.Lock()
			n.started, n.lastErr, n.lastCall, n.calls = prev.started, prev.lastErr, prev.lastCall, prev.calls
			prev.mu.Unlock()
		}
	}
	if !r.completeLocked() {
		return
	}
	// What old left undelivered goes to every writer; what it delivered
	// goes to the new ones only.
	r.replay = pending == 0 && delivered
	r.pending = pending | r.allChanges()
	r.signal()
}

// builtPlugins returns the current build.
func (a *Agent) builtPlugins() *plugins {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.built
}

func pluginOf(ps []config.Plugin, name string) config.Plugin {
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	return config.Plugin{}
}

// stop stops r's loops and waits for them: a write in progress finishes
// (deliver detaches writes from cancellation), a Notify in progress is
// cancelled.
func (r *svidRunner) stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.loops.stop()
}

// unhealthyLoops describes every wedged or dead loop of the agent and its
// runners.
func (a *Agent) unhealthyLoops() []string {
	bad := a.loops.unhealthy(a.wedgeAfter)
	a.mu.Lock()
	runners := a.runners
	a.mu.Unlock()
	for _, r := range runners {
		bad = append(bad, r.loops.unhealthy(a.wedgeAfter)...)
	}
	return bad
}

// loadForReload returns the new configuration. A loader that panics fails
// the reload: a reload never takes the agent down.
func (a *Agent) loadForReload() (cfg *Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("loading the configuration panicked: %v", r)
		}
	}()
	if a.reloadFn != nil {
		return a.reloadFn()
	}
	if a.configPath != "" {
		return config.Load(a.configPath)
	}
	return nil, errors.New("this agent has no configuration source; use WithConfigPath or WithReload")
}

// buildForReload is build, with a panic (a plugin constructor's, say)
// turned into an error: a reload never takes the agent down.
func (a *Agent) buildForReload(ctx context.Context, cfg *Config, prev *plugins, prevRunners []*svidRunner) (b *plugins, runners []*svidRunner, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, runners, err = nil, nil, fmt.Errorf("building the plugins panicked: %v", r)
		}
	}()
	return a.build(ctx, cfg, prev, prevRunners, false)
}

// Reload applies a new configuration to the running agent, make before
// break:
//
//  1. the configuration is loaded and validated (WithConfigPath or
//     WithReload);
//  2. new and changed plugins are built, opened and configured, and
//     started; unchanged ones (the same decoded config; for an external
//     plugin the same settings and file) are kept with their state: a
//     files writer, an exec notifier's command, a go-plugin process, a
//     WASM instance;
//  3. a moved health listener is opened;
//  4. only then is the new configuration swapped in: an svid block whose
//     settings and plugins are unchanged keeps running untouched; a
//     changed one is stopped (a write in progress finishes) and rebuilt,
//     and its new runner delivers the current credentials at once when its
//     issuer and request are unchanged, or asks the issuer otherwise;
//  5. the old plugins nobody uses any more, and the old health listener,
//     are closed.
//
// When a step before the swap fails (a loader or a plugin constructor that
// panics included), what it built is closed and the old configuration
// keeps running untouched. The error (with file:line:col for
// a configuration problem) is logged, counted and returned. A plugin whose
// file changed while its pinned sha256 did not is kept running as it is,
// and reported as ReloadFailed, with both hashes, although the rest of the
// configuration is applied.
//
// daemon_mode and helper.conf's log_level are not reloaded: they need a
// restart. Reload fails when the agent is not running (Run in daemon mode).
// ctx bounds waiting for a reload in progress.
func (a *Agent) Reload(ctx context.Context) error {
	if err := a.lockReload(ctx); err != nil {
		return err
	}
	defer a.reloadMu.Unlock()
	a.mu.Lock()
	runCtx, prev, prevRunners, hs := a.runCtx, a.built, a.runners, a.health
	a.mu.Unlock()
	if runCtx == nil {
		return errors.New("reloading: the agent is not running")
	}
	start := time.Now()
	log := a.log.With("component", "reload")

	cfg, err := a.loadForReload()
	if err != nil {
		return a.reloadDone(start, ReloadInvalid, fmt.Errorf("reloading the configuration: %w", err), false)
	}
	// Plugins live as long as the agent runs, not as long as ctx.
	b, runners, err := a.buildForReload(runCtx, cfg, prev, prevRunners)
	if err != nil {
		return a.reloadDone(start, ReloadFailed, fmt.Errorf("reloading the configuration: %w; the previous configuration keeps running", err), false)
	}
	if err := a.startPlugins(runCtx, b.fresh); err != nil {
		a.closeInstances(b.fresh)
		return a.reloadDone(start, ReloadFailed, fmt.Errorf("reloading the configuration: %w; the previous configuration keeps running", err), false)
	}
	newHS, err := a.startHealth(cfg.Health, hs)
	if err != nil {
		a.closeInstances(b.fresh)
		return a.reloadDone(start, ReloadFailed, fmt.Errorf("reloading the configuration: %w; the previous configuration keeps running", err), false)
	}

	// The swap.
	a.mu.Lock()
	cfg.DaemonMode = a.cfg.DaemonMode // not reloadable
	a.cfg, a.built, a.runners, a.health = cfg, b, runners, newHS
	a.mu.Unlock()
	if newHS != nil {
		newHS.setHandler(a.HealthHandler())
	}

	// Stop the runners that are not kept, then start their successors
	// from what they held.
	var stopped, started, kept []string
	retired := map[string]*svidRunner{}
	for _, r := range prevRunners {
		if !slices.Contains(runners, r) {
			r.stop()
			retired[r.src.Name] = r
			stopped = append(stopped, r.src.Name)
		}
	}
	for _, r := range runners {
		if slices.Contains(prevRunners, r) {
			kept = append(kept, r.src.Name)
			continue
		}
		r.carry(retired[r.src.Name], keptIssuerOf(b, r.src.Issuer))
		a.startRunner(runCtx, r)
		started = append(started, r.src.Name)
	}
	for name := range retired {
		if !slices.ContainsFunc(runners, func(r *svidRunner) bool { return r.src.Name == name }) {
			a.metricsForgetSVID(name)
		}
	}

	// Break: close what is no longer used.
	var unused []any
	for _, inst := range prev.all {
		if !slices.ContainsFunc(b.all, func(x any) bool { return sameInstance(x, inst) }) {
			unused = append(unused, inst)
		}
	}
	a.closeInstances(unused)
	if newHS != hs {
		hs.shutdown()
	}

	log.Info("configuration reloaded", "svids_kept", kept, "svids_started", started, "svids_stopped", stopped,
		"plugins_new", len(b.fresh), "plugins_closed", len(unused), "duration", time.Since(start))
	if len(b.problems) > 0 {
		return a.reloadDone(start, ReloadFailed, errors.Join(b.problems...), true)
	}
	return a.reloadDone(start, ReloadOK, nil, true)
}

// lockReload takes reloadMu, or gives up when ctx is done.
func (a *Agent) lockReload(ctx context.Context) error {
	for !a.reloadMu.TryLock() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reloading: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond): // no event exists for a mutex
		}
	}
	return nil
}

// keptIssuerOf reports whether issuer name's instance was kept.
func keptIssuerOf(b *plugins, name string) bool {
	return b.kept["issuer/"+name] || keptIssuer(b, name)
}

// sameInstance reports whether x and y are the same plugin instance;
// instances that are not comparable are never the same.
func sameInstance(x, y any) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return x == y
}

// reloadDone records and reports a reload's result; applied says whether
// the new configuration was swapped in.
func (a *Agent) reloadDone(start time.Time, result string, err error, applied bool) error {
	a.metricsReload(result)
	a.mu.Lock()
	a.reload.Reloads++
	a.reload.Result = result
	a.reload.LastAttempt = timePtr(start)
	a.reload.Error = ""
	if err != nil {
		a.reload.Error = err.Error()
	}
	if applied {
		a.reload.LastSuccess = timePtr(start)
	}
	a.mu.Unlock()
	if err == nil {
		return nil
	}
	a.log.Error("reloading the configuration failed", "component", "reload", "result", result,
		"error", err, "diagnostics", formatDiagnostics(err))
	return err
}

// formatDiagnostics renders err's hcl.Diagnostics as file:line:col lines,
// quoting the source.
func formatDiagnostics(err error) string {
	return config.FormatError(err, config.SourceFiles(err))
}

// watchConfig reloads when the configuration file, or an external
// plugin's file, changes. It watches their directories, so that a rename
// over the file and a ..data symlink swap are seen, debounces the events,
// and reloads only when a file's content changed (the directory may hold
// other files, the agent's own output even).
//
// It takes the fingerprint and adds the watches at once, and returns the
// function that starts the watch loop: Run calls it before any svid runner
// starts, so that no change made once the agent is ready can go unseen, and
// calls start once the runners are running.
func (a *Agent) watchConfig(ctx context.Context) (start func()) {
	if a.configPath == "" {
		return func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Error("cannot watch the configuration; reload with SIGHUP", "component", "reload", "error", err)
		return func() {}
	}
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	last, dirs := a.fingerprint(cfg)
	watched := map[string]bool{}
	a.watchDirs(w, watched, dirs)
	return func() {
		a.loops.goLoop("config watcher", func(l *loop) {
			defer w.Close()
			a.watchLoop(ctx, l, w, last, watched)
		})
	}
}

// watchDirs adds the directories not watched yet.
func (a *Agent) watchDirs(w *fsnotify.Watcher, watched map[string]bool, dirs []string) {
	for _, d := range dirs {
		if watched[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			a.log.Warn("cannot watch a directory for configuration changes; reload with SIGHUP", "component", "reload", "dir", d, "error", err)
			continue
		}
		watched[d] = true
	}
}

// fingerprint is the content of the files a reload reads, and the
// directories to watch for them.
func (a *Agent) fingerprint(cfg *Config) (sum string, dirs []string) {
	h := sha256.New()
	files := []string{a.configPath}
	if cfg != nil {
		for _, e := range cfg.Plugins {
			files = append(files, e.Path)
		}
	}
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00", f, fileSHA256(f))
		if d, err := filepath.Abs(filepath.Dir(f)); err == nil && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), dirs
}

func (a *Agent) watchLoop(ctx context.Context, l *loop, w *fsnotify.Watcher, last string, watched map[string]bool) {
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	defer timer.Stop()
	var pendingSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			now := time.Now()
			if pendingSince.IsZero() {
				pendingSince = now
			}
			// A directory that never goes quiet is still looked at every
			// ten debounce periods.
			delay := a.reloadDebounce
			if limit := pendingSince.Add(10 * a.reloadDebounce); now.Add(delay).After(limit) {
				delay = max(limit.Sub(now), 0)
			}
			timer.Reset(delay)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.log.Warn("configuration watcher error; checking the files", "component", "reload", "error", err)
			timer.Reset(a.reloadDebounce)
		case <-timer.C:
			pendingSince = time.Time{}
			// The latest readable config names the plugin files to
			// watch, even when it does not apply (a pin that waits for
			// its file).
			latest, _ := config.Load(a.configPath)
			if latest == nil {
				a.mu.Lock()
				latest = a.cfg
				a.mu.Unlock()
			}
			sum, dirs := a.fingerprint(latest)
			a.watchDirs(w, watched, dirs)
			if sum == last {
				continue
			}
			last = sum
			l.busy()
			_ = a.Reload(ctx) // reported by Reload
			l.idle()
		}
	}
}

// metricsReload counts a reload by result
// (svidagent_config_reloads_total{result}).
func (a *Agent) metricsReload(result string) { a.metrics.ConfigReload(result) }

// metricsForgetSVID drops the series of an svid block removed by a reload.
func (a *Agent) metricsForgetSVID(name string) { a.metrics.ForgetSVID(name) }
