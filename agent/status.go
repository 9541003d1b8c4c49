package agent

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
)

// WithVersion sets the version the agent reports in its build info
// metric and its status. Default: the main module's version, or "dev".
func WithVersion(v string) Option { return func(a *Agent) { a.version = v } }

// IdentityStatus is one SPIFFE ID the agent last delivered.
type IdentityStatus struct {
	// SVID is the svid block that delivered it.
	SVID     string `json:"svid"`
	SPIFFEID string `json:"spiffe_id"`
	// Type is "x509" or "jwt".
	Type string `json:"type"`
	// Serial is the X509-SVID's serial number, lowercase hex.
	Serial string `json:"serial,omitempty"`
	// Audiences are the JWT-SVID's.
	Audiences []string `json:"audiences,omitempty"`
	// NotBefore is the X509-SVID's; a JWT-SVID's is when it was delivered.
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  time.Time  `json:"not_after"`
	// TimeLeft is NotAfter less the time of the report, in seconds (as
	// JSON) and as a Go duration string; negative once expired.
	TimeLeftSeconds float64 `json:"time_left_seconds"`
	TimeLeft        string  `json:"time_left"`
	// Remaining is the fraction of the lifetime left, 0 to 1.
	Remaining float64 `json:"remaining"`
}

// Plugin states of PluginStatus.State.
const (
	PluginOK          = "ok"
	PluginFailing     = "failing"
	PluginBreakerOpen = "breaker open"
	// PluginStarting is an external plugin still starting in the
	// background: its writers and notifiers get the latest credentials
	// once it is ready.
	PluginStarting = "starting"
)

// PluginStatus is the state of one configured plugin instance.
type PluginStatus struct {
	// Name is the instance's name: an issuer's or external plugin block's
	// label, or a writer's or notifier's name in its svid block.
	Name string `json:"name"`
	// Kind is issuer, writer or notifier.
	Kind string `json:"kind"`
	// SVID is the svid block of a built-in writer or notifier.
	SVID string `json:"svid,omitempty"`
	// Type is a built-in's type (files, signal) or what an external
	// plugin called itself in Describe.
	Type string `json:"type,omitempty"`
	// Runtime is "builtin", "wasm" or "command".
	Runtime string `json:"runtime"`
	// SHA256 is an external plugin's file hash, as loaded.
	SHA256 string `json:"sha256,omitempty"`
	// FileSHA256 is set when an external plugin's file on disk no longer
	// hashes to SHA256: it was replaced since it was loaded. It is the
	// file's sha256 now. The running instance is still the one loaded; a
	// reload loads the new file only once the config pins it.
	FileSHA256 string `json:"file_sha256,omitempty"`
	// FileError says why an external plugin's file on disk cannot be
	// hashed (it was removed, or is unreadable).
	FileError string `json:"file_error,omitempty"`
	// State is "ok", "failing", "breaker open" or "starting".
	State string `json:"state"`
	// Restarts counts an external plugin's restarts after failures.
	Restarts  uint64 `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

// RuntimeBuiltin is PluginStatus.Runtime of the plugins compiled in.
const RuntimeBuiltin = "builtin"

// externalMeta is what status reports of external plugins beyond their
// circuit breaker: runtime, sha256 and restarts, by plugin block name.
type externalMeta struct {
	mu sync.Mutex
	m  map[string]*extMeta
}

type extMeta struct {
	runtime  string
	sha256   atomic.Pointer[string] // set by a start, which may run in the background
	restarts atomic.Uint64
	file     fileCheck
}

// fileRecheck is how often status hashes an unchanged-looking plugin file
// again: every readiness probe builds a status, and a file rewritten with
// the same size and mtime is still found within this time.
const fileRecheck = 10 * time.Second

// fileCheck caches the sha256 of an external plugin's file on disk: it is
// hashed again when its size or mtime change, or fileRecheck after the
// last hash.
type fileCheck struct {
	mu    sync.Mutex
	path  string
	size  int64
	mtime time.Time
	at    time.Time
	sum   string
	err   error
}

// hash returns the sha256 of the file at path, from the cache when it
// still holds.
func (c *fileCheck) hash(path string, now time.Time) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		c.path, c.sum, c.err = "", "", nil
		return "", err
	}
	if c.path == path && c.err == nil && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) && now.Sub(c.at) < fileRecheck {
		return c.sum, nil
	}
	c.path, c.size, c.mtime, c.at = path, fi.Size(), fi.ModTime(), now
	c.sum, c.err = load.HashFile(path)
	return c.sum, c.err
}

// meta returns the record of plugin name, creating it.
func (x *externalMeta) meta(name, runtime string) *extMeta {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[string]*extMeta{}
	}
	m, ok := x.m[name]
	if !ok || m.runtime != runtime {
		m = &extMeta{runtime: runtime}
		x.m[name] = m
	}
	return m
}

func (x *externalMeta) get(name string) *extMeta {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.m[name]
}

// pluginRestarted returns the OnRestart hook of an external plugin's
// runtime: it counts the restart for metrics and status.
func (a *Agent) pluginRestarted(name, runtime string) func() {
	m := a.externals.meta(name, runtime)
	return func() {
		m.restarts.Add(1)
		a.metrics.PluginRestart(name, runtime)
	}
}

// recordPin records e's runtime and the sha256 of what runs, for status.
func (a *Agent) recordPin(e *config.External, c load.Conn) {
	m := a.externals.meta(e.Name, e.Runtime)
	if h, ok := c.(interface{ SHA256() string }); ok && h.SHA256() != "" {
		sum := h.SHA256()
		m.sha256.Store(&sum)
	} else {
		sum := strings.ToLower(e.SHA256)
		m.sha256.Store(&sum)
	}
}

func x509Expiries(ids []hostapi.X509Identity) map[string]time.Time {
	out := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		if t, ok := out[id.SPIFFEID]; !ok || id.NotAfter.Before(t) {
			out[id.SPIFFEID] = id.NotAfter
		}
	}
	return out
}

func jwtExpiries(ids []hostapi.JWTIdentity) map[string]time.Time {
	out := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		if t, ok := out[id.SPIFFEID]; !ok || id.Expiry.Before(t) {
			out[id.SPIFFEID] = id.Expiry
		}
	}
	return out
}

func identity(svid, typ, id string, notBefore, notAfter, now time.Time) IdentityStatus {
	left := notAfter.Sub(now)
	is := IdentityStatus{
		SVID: svid, SPIFFEID: id, Type: typ, NotBefore: timePtr(notBefore), NotAfter: notAfter,
		TimeLeftSeconds: left.Seconds(), TimeLeft: left.Round(time.Second).String(),
	}
	if life := notAfter.Sub(notBefore); life > 0 && !notBefore.IsZero() {
		is.Remaining = min(max(float64(left)/float64(life), 0), 1)
	}
	return is
}

// extendStatus adds the identities, the last rotation and the plugins to
// st, from runners and the current config.
func (a *Agent) extendStatus(st *Status, now time.Time, runners []*svidRunner) {
	st.Version = a.metrics.Version()
	st.Identities = []IdentityStatus{}
	st.Plugins = []PluginStatus{}
	a.mu.Lock()
	cfg, built := a.cfg, a.built
	var externals map[string]*external
	if built != nil {
		externals = make(map[string]*external, len(built.externals))
		for k, v := range built.externals {
			externals[k] = v
		}
	}
	a.mu.Unlock()

	issuerErrs := map[string]string{}
	for _, r := range runners {
		r.mu.Lock()
		if !r.lastRot.IsZero() && (st.LastRotation == nil || r.lastRot.After(*st.LastRotation)) {
			t := r.lastRot
			st.LastRotation = &t
		}
		for _, x := range r.lastX509 {
			is := identity(r.cfg.Name, "x509", x.SPIFFEID, x.NotBefore, x.NotAfter, now)
			is.Serial = x.Serial
			st.Identities = append(st.Identities, is)
		}
		for _, j := range r.lastJWT {
			is := identity(r.cfg.Name, "jwt", j.SPIFFEID, r.lastRot, j.Expiry, now)
			is.NotBefore = nil
			is.Audiences = j.Audiences
			st.Identities = append(st.Identities, is)
		}
		if r.issuerErr != nil {
			issuerErrs[r.cfg.Issuer] = r.issuerErr.Error()
		}
		// Built-in writers, in config order as the outputs are.
		for i, o := range r.outputs {
			if i >= len(r.cfg.Writers) || r.cfg.Writers[i].External != nil {
				continue
			}
			ps := PluginStatus{Name: o.name, Kind: string(hostapi.KindWriter), SVID: r.cfg.Name, Type: r.cfg.Writers[i].Type, Runtime: RuntimeBuiltin, State: PluginOK}
			if o.lastErr != nil {
				ps.State, ps.LastError = PluginFailing, o.lastErr.Error()
			}
			st.Plugins = append(st.Plugins, ps)
		}
		r.mu.Unlock()
		for i, n := range r.notifiers {
			if i >= len(r.cfg.Notifiers) || r.cfg.Notifiers[i].External != nil {
				continue
			}
			ps := PluginStatus{Name: n.name, Kind: string(hostapi.KindNotifier), SVID: r.cfg.Name, Type: r.cfg.Notifiers[i].Type, Runtime: RuntimeBuiltin, State: PluginOK}
			n.mu.Lock()
			if n.lastErr != nil {
				ps.State, ps.LastError = PluginFailing, n.lastErr.Error()
			}
			n.mu.Unlock()
			st.Plugins = append(st.Plugins, ps)
		}
	}
	if cfg == nil {
		return
	}
	var builtinIssuers []PluginStatus
	seen := map[string]bool{}
	var ext []*config.External
	addExt := func(e *config.External) {
		if e != nil && !seen[e.Name] {
			seen[e.Name] = true
			ext = append(ext, e)
		}
	}
	for _, p := range cfg.Issuers {
		if p.External != nil {
			addExt(p.External)
			continue
		}
		ps := PluginStatus{Name: p.Name, Kind: string(hostapi.KindIssuer), Type: p.Type, Runtime: RuntimeBuiltin, State: PluginOK}
		if e, ok := issuerErrs[p.Name]; ok {
			ps.State, ps.LastError = PluginFailing, e
		}
		builtinIssuers = append(builtinIssuers, ps)
	}
	for _, s := range cfg.SVIDs {
		for _, w := range s.Writers {
			addExt(w.External)
		}
		for _, n := range s.Notifiers {
			addExt(n.External)
		}
	}
	st.Plugins = append(builtinIssuers, st.Plugins...)
	for _, e := range ext {
		ps := PluginStatus{Name: e.Name, Kind: string(e.Kind), Runtime: e.Runtime, SHA256: strings.ToLower(e.SHA256), State: PluginOK}
		if m := a.externals.get(e.Name); m != nil {
			if sum := m.sha256.Load(); sum != nil && *sum != "" {
				ps.SHA256 = *sum
			}
			ps.Restarts = m.restarts.Load()
			if ps.SHA256 != "" && e.Path != "" {
				switch sum, err := m.file.hash(e.Path, now); {
				case err != nil:
					ps.FileError = err.Error()
				case sum != ps.SHA256:
					ps.FileSHA256 = sum
				}
			}
		}
		x := externals[e.Name]
		p, err := (*adapter.Plugin)(nil), error(nil)
		if x != nil {
			p, err = x.plugin()
		}
		switch {
		case x == nil:
			ps.State, ps.LastError = PluginFailing, "not loaded"
		case x.firstStart():
			ps.State = PluginStarting
			st.Starting = append(st.Starting, e.Name)
		case err != nil:
			ps.State, ps.LastError = PluginFailing, err.Error()
		default:
			ps.Type = p.Info().Name
			bs := p.Status()
			ps.LastError = bs.LastError
			switch {
			case bs.State == adapter.BreakerOpen:
				ps.State = PluginBreakerOpen
			case bs.State == adapter.BreakerHalfOpen || bs.ConsecutiveFailures > 0:
				ps.State = PluginFailing
			}
		}
		st.Plugins = append(st.Plugins, ps)
	}
}
