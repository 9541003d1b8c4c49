package metrics

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "svidagent"

// Stages of [Metrics.Error].
const (
	StageIssue  = "issue"
	StageVerify = "verify"
	StageWrite  = "write"
	StageNotify = "notify"
)

// Results of [Metrics.ConfigReload].
const (
	// ReloadOK: the new config was applied.
	ReloadOK = "ok"
	// ReloadInvalid: the new config did not parse or validate; the old one
	// keeps running.
	ReloadInvalid = "invalid"
	// ReloadFailed: the new config was valid but building it (loading a
	// plugin) failed; the old one keeps running.
	ReloadFailed = "failed"
)

// Credential types of the SVID expiry gauge's "type" label.
const (
	TypeX509 = "x509"
	TypeJWT  = "jwt"
)

// durationBuckets are the histogram buckets, in seconds, of writes,
// notifications and plugin calls: 1ms to 30s.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics holds one agent's metrics and their registry. It is safe for
// concurrent use. The zero value is not usable; a nil *Metrics records
// nothing.
type Metrics struct {
	reg         *prometheus.Registry
	runtimeOnce sync.Once // registerRuntime

	svidExpiry     *prometheus.GaugeVec
	rotations      *prometheus.CounterVec
	writeDuration  *prometheus.HistogramVec
	notifyDuration *prometheus.HistogramVec
	notifyRetries  *prometheus.CounterVec
	errors         *prometheus.CounterVec
	pluginRestarts *prometheus.CounterVec
	pluginCalls    *prometheus.CounterVec
	pluginLatency  *prometheus.HistogramVec
	issuerBackoff  *prometheus.GaugeVec
	issuerFailing  *prometheus.GaugeVec
	configReloads  *prometheus.CounterVec
	buildInfo      *prometheus.GaugeVec
	plugins        *pluginCounters
	version        string

	// expiryMu guards expirySeries: per svid block, the (spiffe_id, type)
	// label values of its expiry series, so that a delivery replaces them
	// in O(its identities) (DeletePartialMatch scans every block's series,
	// which made rotating N blocks O(N²)).
	expiryMu     sync.Mutex
	expirySeries map[string][][2]string
}

// New returns the metrics of one agent on a fresh registry, with the build
// info set from version (empty: the main module's version, or "dev") and
// the Go and process collectors registered.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		svidExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "svid", Name: "expiry_timestamp_seconds",
			Help: "Unix time at which the delivered SVID expires, by svid block, SPIFFE ID and type (x509, jwt).",
		}, []string{"svid", "spiffe_id", "type"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "svid", Name: "rotations_total",
			Help: "Deliveries of new credentials to at least one writer, by svid block.",
		}, []string{"svid"}),
		writeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "writer", Name: "write_duration_seconds",
			Help: "Duration of writes, successful or not, by svid block and writer.", Buckets: durationBuckets,
		}, []string{"svid", "writer"}),
		notifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "notifier", Name: "notify_duration_seconds",
			Help: "Duration of notifications, successful or not, by svid block and notifier.", Buckets: durationBuckets,
		}, []string{"svid", "notifier"}),
		notifyRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "notifier", Name: "retries_total",
			Help: "Notifications tried again after a failure, by svid block and notifier.",
		}, []string{"svid", "notifier"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "svid", Name: "errors_total",
			Help: "Failures by svid block and stage (issue, verify, write, notify).",
		}, []string{"svid", "stage"}),
		pluginRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "plugins", Name: "restarts_total",
			Help: "Restarts of external plugins after a failure: a new process (command) or a fresh instance (wasm).",
		}, []string{"plugin", "runtime"}),
		pluginCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "plugins", Name: "calls_total",
			Help: "Calls into external plugins by plugin, runtime, method and result (ok, error).",
		}, []string{"plugin", "runtime", "method", "result"}),
		pluginLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "plugins", Name: "call_duration_seconds",
			Help: "Latency of calls into external plugins by plugin, runtime and method.", Buckets: durationBuckets,
		}, []string{"plugin", "runtime", "method"}),
		issuerBackoff: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "issuer", Name: "backoff_seconds",
			Help: "Current wait before the issuer is asked again after a failure, by svid block; 0 when healthy.",
		}, []string{"svid"}),
		issuerFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "issuer", Name: "failing",
			Help: "1 while the svid block's issuer is failing (the last good credentials stay in place), 0 otherwise.",
		}, []string{"svid"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "config", Name: "reloads_total",
			Help: "Config reloads by result (ok, invalid, failed).",
		}, []string{"result"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "build", Name: "info",
			Help: "Always 1; the labels carry the agent's version and the Go version it was built with.",
		}, []string{"version", "goversion"}),
		plugins:      newPluginCounters(),
		expirySeries: map[string][][2]string{},
	}
	m.reg.MustRegister(
		m.svidExpiry, m.rotations, m.writeDuration, m.notifyDuration, m.notifyRetries, m.errors,
		m.pluginRestarts, m.pluginCalls, m.pluginLatency, m.issuerBackoff, m.issuerFailing,
		m.configReloads, m.buildInfo, m.plugins,
	)
	if version == "" {
		version = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
	}
	m.version = version
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for _, r := range []string{ReloadOK, ReloadInvalid, ReloadFailed} {
		m.configReloads.WithLabelValues(r) // present at 0 from the start
	}
	return m
}

// Version is the version of the build info metric.
func (m *Metrics) Version() string { return m.version }

// Registry returns the agent's registry, for embedders that serve or
// gather it themselves.
func (m *Metrics) Registry() *prometheus.Registry {
	m.registerRuntime()
	return m.reg
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	m.registerRuntime()
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// registerRuntime adds the Go runtime and process collectors, once, when
// the registry is first served or handed out: building them reads the
// runtime's metric descriptions and /proc, about 0.3 ms that a one-shot
// fetch or an agent without a metrics endpoint need not pay. They gather
// their values when scraped, so registering them late loses nothing.
func (m *Metrics) registerRuntime() {
	m.runtimeOnce.Do(func() {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
}

// SVIDExpiry replaces the expiry gauges of the svid block with the
// credentials it just delivered: expiries maps a SPIFFE ID to its expiry,
// per type (TypeX509, TypeJWT). An ID that is no longer delivered is
// dropped.
func (m *Metrics) SVIDExpiry(svid string, x509, jwt map[string]time.Time) {
	if m == nil {
		return
	}
	m.expiryMu.Lock()
	defer m.expiryMu.Unlock()
	for _, old := range m.expirySeries[svid] {
		now := x509
		if old[1] == TypeJWT {
			now = jwt
		}
		if _, kept := now[old[0]]; !kept {
			m.svidExpiry.DeleteLabelValues(svid, old[0], old[1])
		}
	}
	series := make([][2]string, 0, len(x509)+len(jwt))
	for id, t := range x509 {
		m.svidExpiry.WithLabelValues(svid, id, TypeX509).Set(float64(t.UnixNano()) / 1e9)
		series = append(series, [2]string{id, TypeX509})
	}
	for id, t := range jwt {
		m.svidExpiry.WithLabelValues(svid, id, TypeJWT).Set(float64(t.UnixNano()) / 1e9)
		series = append(series, [2]string{id, TypeJWT})
	}
	m.expirySeries[svid] = series
}

// Rotation counts a delivery of new credentials by the svid block.
func (m *Metrics) Rotation(svid string) {
	if m == nil {
		return
	}
	m.rotations.WithLabelValues(svid).Inc()
}

// WriteDuration observes one write.
func (m *Metrics) WriteDuration(svid, writer string, d time.Duration) {
	if m == nil {
		return
	}
	m.writeDuration.WithLabelValues(svid, writer).Observe(d.Seconds())
}

// NotifyDuration observes one notification.
func (m *Metrics) NotifyDuration(svid, notifier string, d time.Duration) {
	if m == nil {
		return
	}
	m.notifyDuration.WithLabelValues(svid, notifier).Observe(d.Seconds())
}

// NotifyRetry counts a notification tried again after a failure.
func (m *Metrics) NotifyRetry(svid, notifier string) {
	if m == nil {
		return
	}
	m.notifyRetries.WithLabelValues(svid, notifier).Inc()
}

// Error counts a failure of the svid block at stage (StageIssue,
// StageVerify, StageWrite, StageNotify).
func (m *Metrics) Error(svid, stage string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(svid, stage).Inc()
}

// PluginRestart counts a restart of an external plugin.
func (m *Metrics) PluginRestart(plugin, runtime string) {
	if m == nil {
		return
	}
	m.pluginRestarts.WithLabelValues(plugin, runtime).Inc()
}

// PluginCall counts a call into an external plugin and observes its
// latency. method is the short method name ("Notify").
func (m *Metrics) PluginCall(plugin, runtime, method string, d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.pluginCalls.WithLabelValues(plugin, runtime, method, result).Inc()
	m.pluginLatency.WithLabelValues(plugin, runtime, method).Observe(d.Seconds())
}

// IssuerBackoff records the svid block's issuer state: failing, and the
// wait before the next attempt (0 when unknown or not backing off).
func (m *Metrics) IssuerBackoff(svid string, failing bool, wait time.Duration) {
	if m == nil {
		return
	}
	f := 0.0
	if failing {
		f = 1
	}
	m.issuerFailing.WithLabelValues(svid).Set(f)
	m.issuerBackoff.WithLabelValues(svid).Set(wait.Seconds())
}

// IssuerFailing sets the failing gauge alone, keeping the backoff gauge.
func (m *Metrics) IssuerFailing(svid string, failing bool) {
	if m == nil {
		return
	}
	f := 0.0
	if failing {
		f = 1
	}
	m.issuerFailing.WithLabelValues(svid).Set(f)
	if !failing {
		m.issuerBackoff.WithLabelValues(svid).Set(0)
	}
}

// ConfigReload counts a config reload by result (ReloadOK, ReloadInvalid,
// ReloadFailed).
func (m *Metrics) ConfigReload(result string) {
	if m == nil {
		return
	}
	m.configReloads.WithLabelValues(result).Inc()
}

// ForgetSVID drops every series of an svid block that no longer exists
// (after a reload removed it).
func (m *Metrics) ForgetSVID(svid string) {
	if m == nil {
		return
	}
	m.expiryMu.Lock()
	defer m.expiryMu.Unlock()
	delete(m.expirySeries, svid)
	l := prometheus.Labels{"svid": svid}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.svidExpiry, m.rotations, m.writeDuration, m.notifyDuration, m.errors, m.issuerBackoff, m.issuerFailing} {
		v.DeletePartialMatch(l)
	}
}
