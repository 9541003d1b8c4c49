package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/svidagent/svidagent/internal/config"
)

// Status is a snapshot of the agent's state, as the health endpoints
// serve it.
type Status struct {
	// Live is false when an internal loop is wedged or dead.
	Live bool `json:"live"`
	// Ready is true when every output holds a current, unexpired
	// credential written by this process and its last write succeeded.
	Ready bool `json:"ready"`
	// Problems explains why Live or Ready is false.
	Problems []string     `json:"problems,omitempty"`
	SVIDs    []SVIDStatus `json:"svids"`

	// Version is the agent's version (WithVersion).
	Version string `json:"version,omitempty"`
	// Identities are the SPIFFE IDs last delivered, across svid blocks.
	Identities []IdentityStatus `json:"identities"`
	// LastRotation is the latest delivery of any svid block.
	LastRotation *time.Time `json:"last_rotation,omitempty"`
	// Plugins are the configured plugins, built-in and external.
	Plugins []PluginStatus `json:"plugins"`
	// Starting names the external plugins still starting in the
	// background; their outputs are not ready until they deliver.
	Starting []string `json:"starting,omitempty"`
	// Reload is the outcome of the configuration reloads, when the agent
	// reloads (WithConfigPath, WithReload).
	Reload *ReloadStatus `json:"reload,omitempty"`
}

// SVIDStatus is the state of one svid block.
type SVIDStatus struct {
	Name         string           `json:"name"`
	Issuer       string           `json:"issuer"`
	IssuerError  string           `json:"issuer_error,omitempty"`
	Error        string           `json:"error,omitempty"`
	LastRotation *time.Time       `json:"last_rotation,omitempty"`
	Outputs      []OutputStatus   `json:"outputs"`
	Notifiers    []NotifierStatus `json:"notifiers,omitempty"`
}

// OutputStatus is what one writer last delivered.
type OutputStatus struct {
	Writer    string     `json:"writer"`
	Ready     bool       `json:"ready"`
	SPIFFEID  string     `json:"spiffe_id,omitempty"`
	Serial    string     `json:"serial,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	LastWrite *time.Time `json:"last_write,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// Starting is set while the writer's plugin is still starting.
	Starting bool `json:"starting,omitempty"`
}

// NotifierStatus is the state of one notifier.
type NotifierStatus struct {
	Notifier  string `json:"notifier"`
	Calls     uint64 `json:"calls"`
	LastError string `json:"last_error,omitempty"`
	// Retrying is set while a failed notification waits to be tried
	// again: after Attempts failures, next at NextAttempt.
	Retrying    bool       `json:"retrying,omitempty"`
	Attempts    int        `json:"attempts,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// Starting is set while the notifier's plugin is still starting; it
	// gets the latest rotation once it is ready.
	Starting bool `json:"starting,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Status returns the agent's current state. Expiry is judged now, so an
// output turns unready the moment its credential expires, even while the
// issuer is unreachable.
func (a *Agent) Status() Status {
	now := time.Now()
	st := Status{Live: true, Ready: true}
	if bad := a.unhealthyLoops(); len(bad) > 0 {
		st.Live = false
		st.Problems = append(st.Problems, bad...)
	}
	a.mu.Lock()
	runners := a.runners
	if a.configPath != "" || a.reloadFn != nil {
		rs := a.reload
		st.Reload = &rs
	}
	a.mu.Unlock()
	if len(runners) == 0 {
		st.Ready = false
		st.Problems = append(st.Problems, "not started")
	}
	for _, r := range runners {
		r.mu.Lock()
		ss := SVIDStatus{Name: r.cfg.Name, Issuer: r.cfg.Issuer, LastRotation: timePtr(r.lastRot)}
		if r.issuerErr != nil {
			ss.IssuerError = r.issuerErr.Error()
		}
		if r.lastErr != nil {
			ss.Error = r.lastErr.Error()
		}
		for _, o := range r.outputs {
			os := OutputStatus{
				Writer: o.name, SPIFFEID: o.spiffeID, Serial: o.serial,
				NotAfter: timePtr(o.notAfter), LastWrite: timePtr(o.lastWrite),
			}
			switch {
			case !o.written:
				os.LastError = "nothing written yet"
				if o.lastErr != nil {
					os.LastError = o.lastErr.Error()
				}
				if ns := notStarted(o.writer); ns != nil {
					os.LastError, os.Starting = ns.Error(), ns.starting
				}
			case o.lastErr != nil:
				os.LastError = o.lastErr.Error()
			case !now.Before(o.notAfter):
				os.LastError = "the credential on disk expired at " + o.notAfter.UTC().Format(time.RFC3339)
			default:
				os.Ready = true
			}
			if !os.Ready {
				st.Ready = false
				st.Problems = append(st.Problems, "svid "+r.cfg.Name+" writer "+o.name+": "+os.LastError)
			}
			ss.Outputs = append(ss.Outputs, os)
		}
		r.mu.Unlock()
		for _, n := range r.notifiers {
			n.mu.Lock()
			ns := NotifierStatus{Notifier: n.name, Calls: n.calls}
			if n.lastErr != nil {
				ns.LastError = n.lastErr.Error()
			}
			if e := notStarted(n.notifier); e != nil {
				ns.LastError, ns.Starting = e.Error(), e.starting
			}
			if !n.nextTry.IsZero() {
				ns.Retrying, ns.Attempts, ns.NextAttempt = true, n.failures, timePtr(n.nextTry)
			}
			n.mu.Unlock()
			ss.Notifiers = append(ss.Notifiers, ns)
		}
		st.SVIDs = append(st.SVIDs, ss)
	}
	a.extendStatus(&st, now, runners)
	return st
}

// HealthHandler serves liveness and readiness at the configured paths:
// 200 or 503, with the Status as a JSON body (see below); /status, the Status always
// with 200 (`svidagent status` reads it); and /metrics, the agent's
// Prometheus metrics (docs/METRICS.md). GET and HEAD only.
//
// /status and /metrics tell SPIFFE IDs, serials, plugin hashes and socket
// paths: they are served only to a request that reached the server on a
// loopback address (http.LocalAddrContextKey), unless the health block
// sets expose_status. Elsewhere (a listener on every interface, seen from
// the network) the probes alone are served, with a body of their verdicts
// only ({"live": true, "ready": false}), and the rest is 404.
//
// Paths match exactly, probes first; whatever paths the Config holds (the
// loader refuses unclean or colliding ones), the handler never panics.
func (a *Agent) HealthHandler() http.Handler {
	a.mu.Lock()
	h := a.cfg.Health
	a.mu.Unlock()
	if h.LivenessPath == "" {
		h.LivenessPath = config.DefaultLivenessPath
	}
	if h.ReadinessPath == "" {
		h.ReadinessPath = config.DefaultReadinessPath
	}
	metrics := a.metrics.Handler()
	// serve writes the Status, or with full unset only its verdicts.
	serve := func(w http.ResponseWriter, full bool, ok func(Status) bool) {
		st := a.Status()
		w.Header().Set("Content-Type", "application/json")
		if !ok(st) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if !full {
			_ = enc.Encode(struct {
				Live  bool `json:"live"`
				Ready bool `json:"ready"`
			}{st.Live, st.Ready})
			return
		}
		_ = enc.Encode(st)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		full := h.ExposeStatus || onLoopback(r)
		switch p := r.URL.Path; {
		case p == h.LivenessPath:
			serve(w, full, func(s Status) bool { return s.Live })
		case p == h.ReadinessPath:
			serve(w, full, func(s Status) bool { return s.Ready })
		case p == "/status" && full:
			serve(w, full, func(Status) bool { return true })
		case p == "/metrics" && full:
			metrics.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// onLoopback reports whether r reached the server on a loopback address
// (or a unix socket).
func onLoopback(r *http.Request) bool {
	switch addr := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return addr.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// healthServer is the health listener and its server. Its handler is
// swapped at a reload, so that changed paths take effect without a new
// listener.
type healthServer struct {
	addr     string // the configured address; "" for WithHealthListener
	ln       net.Listener
	srv      *http.Server
	handler  atomic.Pointer[http.Handler]
	injected bool
}

func (hs *healthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*hs.handler.Load()).ServeHTTP(w, r)
}

func (hs *healthServer) setHandler(h http.Handler) { hs.handler.Store(&h) }

// startHealth returns the health server for h: cur itself when it can
// stay (the address is unchanged, or the listener was injected), else a
// new one listening on h.Address, or nil when health is off. The caller
// shuts cur down when a new one is returned.
func (a *Agent) startHealth(h config.Health, cur *healthServer) (*healthServer, error) {
	if cur != nil && (cur.injected || (h.Enabled && cur.addr == h.Address)) {
		return cur, nil
	}
	var ln net.Listener
	injected := false
	if cur == nil && a.healthLn != nil {
		ln, injected = a.healthLn, true
	} else if h.Enabled {
		var err error
		if ln, err = net.Listen("tcp", h.Address); err != nil {
			return nil, fmt.Errorf("starting health listener on %q: %w; choose a free address in the health block", h.Address, err)
		}
	} else {
		return nil, nil
	}
	hs := &healthServer{addr: h.Address, ln: ln, injected: injected}
	hs.setHandler(a.HealthHandler())
	hs.srv = &http.Server{Handler: hs, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("health listener failed", "component", "health", "error", err)
		}
	}()
	a.log.Info("health listener started", "component", "health", "address", ln.Addr().String())
	return hs, nil
}

// shutdown stops hs; nil is a no-op.
func (hs *healthServer) shutdown() {
	if hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.srv.Shutdown(ctx)
}
