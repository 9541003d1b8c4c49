package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

// client bounds each request: a listener nobody serves (Run failed early)
// must fail the test, not hang it.
var client = &http.Client{Timeout: 30 * time.Second}

// runErr fails the test if Run has returned.
func (h *harness) runErr(t testing.TB) {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err
		t.Fatalf("Run returned early: %v", err)
	default:
	}
}

// scrapeMetrics fetches /metrics and parses it with Prometheus' text
// parser.
func (h *harness) scrapeMetrics(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	h.runErr(t)
	resp, err := client.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of the series of name with exactly labels (a
// histogram's sample count), and whether it exists.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// waitMetric polls /metrics until the series reaches want: a metric is a
// state read on request, with no event to wait for.
func (h *harness) waitMetric(t *testing.T, name string, labels map[string]string, want func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, ok := metricValue(h.scrapeMetrics(t), name, labels)
		if ok && want(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v (present %v), never reached the wanted value", name, labels, v, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

func (h *harness) status(t testing.TB) agent.Status {
	t.Helper()
	h.runErr(t)
	resp, err := client.Get(h.url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/status: %d, want 200 whatever the state", resp.StatusCode)
	}
	var st agent.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func goVersion() string { return runtime.Version() }

// TestMetricsAfterDeliveries drives two rotations and a failed write
// through a pushing issuer and reads the effect on /metrics.
func TestMetricsAfterDeliveries(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	h := start(t, cfg)
	web := map[string]string{"svid": "web"}

	first := svidOf(t, ca, webID, time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{first}, X509Bundles: bundleOf(ca)}
	recv(t, w.wrote, "first write")
	recv(t, n.events, "first notification")
	h.waitMetric(t, "svidagent_svid_rotations_total", web, eq(1))

	second := svidOf(t, ca, webID, 2*time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{second}}
	recv(t, w.wrote, "second write")
	recv(t, n.events, "second notification")
	h.waitMetric(t, "svidagent_svid_rotations_total", web, eq(2))
	h.waitMetric(t, "svidagent_notifier_notify_duration_seconds", map[string]string{"svid": "web", "notifier": "fake"}, eq(2))

	fams := h.scrapeMetrics(t)
	exp := map[string]string{"svid": "web", "spiffe_id": webID.String(), "type": "x509"}
	if v, _ := metricValue(fams, "svidagent_svid_expiry_timestamp_seconds", exp); v != float64(second.Certificates[0].NotAfter.Unix()) {
		t.Errorf("expiry gauge %v, want the second cert's NotAfter %d", v, second.Certificates[0].NotAfter.Unix())
	}
	if v, _ := metricValue(fams, "svidagent_writer_write_duration_seconds", map[string]string{"svid": "web", "writer": "fake"}); v != 2 {
		t.Errorf("%v writes observed, want 2", v)
	}
	if v, ok := metricValue(fams, "svidagent_svid_errors_total", map[string]string{"svid": "web", "stage": "write"}); ok && v != 0 {
		t.Errorf("write errors %v before any failure", v)
	}

	// A failed write: counted by stage, then retried.
	w.fail.Store(1)
	third := svidOf(t, ca, webID, 3*time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{third}}
	h.waitMetric(t, "svidagent_svid_errors_total", map[string]string{"svid": "web", "stage": "write"}, eq(1))
	recv(t, w.wrote, "retried write")
	h.waitMetric(t, "svidagent_svid_rotations_total", web, eq(3))
	fams = h.scrapeMetrics(t)
	if v, _ := metricValue(fams, "svidagent_writer_write_duration_seconds", map[string]string{"svid": "web", "writer": "fake"}); v != 4 {
		t.Errorf("%v writes observed, want 4 (the failed one too)", v)
	}
	if v, _ := metricValue(fams, "svidagent_svid_expiry_timestamp_seconds", exp); v != float64(third.Certificates[0].NotAfter.Unix()) {
		t.Errorf("expiry gauge %v, want the third cert's NotAfter", v)
	}
	if _, ok := metricValue(fams, "svidagent_build_info", map[string]string{"version": "dev", "goversion": goVersion()}); !ok {
		t.Error("no build info")
	}
	if v, ok := metricValue(fams, "svidagent_config_reloads_total", map[string]string{"result": "ok"}); !ok || v != 0 {
		t.Errorf("config reloads{ok} = %v, %v; want 0, present", v, ok)
	}
}

// TestMetricsIssuerFailing: a failing pull issuer shows as failing with a
// backoff, and recovers to 0.
func TestMetricsIssuerFailing(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	iss.failing.Store(true)
	w := newRecWriter()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-pull", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-pull", w)},
	}
	h := start(t, cfg)
	web := map[string]string{"svid": "web"}
	h.waitMetric(t, "svidagent_issuer_failing", web, eq(1))
	h.waitMetric(t, "svidagent_issuer_backoff_seconds", web, func(v float64) bool { return v > 0 && v <= 0.05 })
	h.waitMetric(t, "svidagent_svid_errors_total", map[string]string{"svid": "web", "stage": "issue"}, func(v float64) bool { return v >= 2 })
	if st := h.status(t); len(st.Plugins) == 0 || st.Plugins[0].State != agent.PluginFailing || st.Plugins[0].LastError == "" {
		t.Errorf("status plugins %+v: want the issuer failing with its error", st.Plugins)
	}
	iss.failing.Store(false)
	recv(t, w.wrote, "write after recovery")
	h.waitMetric(t, "svidagent_issuer_failing", web, eq(0))
	h.waitMetric(t, "svidagent_issuer_backoff_seconds", web, eq(0))
}

func TestStatusJSON(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	h := start(t, cfg)
	before := h.status(t)
	if len(before.Identities) != 0 || before.LastRotation != nil {
		t.Errorf("before any delivery: identities %v, last rotation %v", before.Identities, before.LastRotation)
	}
	s := svidOf(t, ca, webID, time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{s}, X509Bundles: bundleOf(ca)}
	recv(t, w.wrote, "write")
	recv(t, n.events, "notification")

	// Read the raw JSON, so that the field names are checked too.
	resp, err := client.Get(h.url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		LastRotation *time.Time `json:"last_rotation"`
		Identities   []struct {
			SVID      string    `json:"svid"`
			SPIFFEID  string    `json:"spiffe_id"`
			Type      string    `json:"type"`
			Serial    string    `json:"serial"`
			NotBefore time.Time `json:"not_before"`
			NotAfter  time.Time `json:"not_after"`
			TimeLeft  float64   `json:"time_left_seconds"`
			Remaining float64   `json:"remaining"`
		} `json:"identities"`
		Plugins []agent.PluginStatus `json:"plugins"`
	}
	err = json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if raw.LastRotation == nil || time.Since(*raw.LastRotation) > time.Minute {
		t.Errorf("last_rotation %v", raw.LastRotation)
	}
	leaf := s.Certificates[0]
	if len(raw.Identities) != 1 {
		t.Fatalf("identities %+v, want 1", raw.Identities)
	}
	id := raw.Identities[0]
	if id.SVID != "web" || id.SPIFFEID != webID.String() || id.Type != "x509" || id.Serial != serialOf(s) ||
		!id.NotBefore.Equal(leaf.NotBefore) || !id.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("identity %+v, want the delivered cert (serial %s, %v to %v)", id, serialOf(s), leaf.NotBefore, leaf.NotAfter)
	}
	if id.TimeLeft <= 3000 || id.TimeLeft > 3600 || id.Remaining <= 0.8 || id.Remaining > 1 {
		t.Errorf("time left %vs, remaining %v: want about an hour, above 0.8", id.TimeLeft, id.Remaining)
	}
	want := []agent.PluginStatus{
		{Name: "fake-push", Kind: "issuer", Type: "fake-push", Runtime: "builtin", State: "ok"},
		{Name: "fake", Kind: "writer", SVID: "web", Type: "fake", Runtime: "builtin", State: "ok"},
		{Name: "fake", Kind: "notifier", SVID: "web", Type: "fake", Runtime: "builtin", State: "ok"},
	}
	if fmt.Sprint(raw.Plugins) != fmt.Sprint(want) {
		t.Errorf("plugins\n got %+v\nwant %+v", raw.Plugins, want)
	}
}

// TestMetricsStatusHammer scrapes /metrics and /status while deliveries
// run, for -race.
func TestMetricsStatusHammer(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	h := start(t, cfg)
	const rotations = 50
	svids := make([]*x509svid.SVID, rotations)
	for i := range svids {
		svids[i] = svidOf(t, ca, webID, time.Hour+time.Duration(i)*time.Second)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				h.scrapeMetrics(t)
				h.status(t)
			}
		}()
	}
	for i, s := range svids {
		c := &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{s}}
		if i == 0 {
			c.X509Bundles = bundleOf(ca)
		}
		iss.updates <- c
		recv(t, w.wrote, "write")
	}
	close(done)
	wg.Wait()
	h.waitMetric(t, "svidagent_svid_rotations_total", map[string]string{"svid": "web"}, eq(rotations))
	last := svids[rotations-1].Certificates[0]
	h.waitMetric(t, "svidagent_svid_expiry_timestamp_seconds",
		map[string]string{"svid": "web", "spiffe_id": webID.String(), "type": "x509"}, eq(float64(last.NotAfter.Unix())))
}

// TestMetricsStatusExternalWASM: a WASM notifier that panics in Notify
// has its instance discarded at each call; the fresh instances show as
// restarts in /metrics and /status, its calls as errors, and status names
// its runtime and sha256.
func TestMetricsStatusExternalWASM(t *testing.T) {
	path, err := hostileWASM()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := wasmrt.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Second}
	w := newRecWriter()
	ext := &config.External{
		Name: "hostile", Kind: hostapi.KindNotifier, Runtime: config.RuntimeWASM,
		Path: path, SHA256: sum, ConfigJSON: []byte(`{}`), Limits: config.Limits{Timeout: time.Second},
	}
	s := svidCfg("fake-pull", w,
		config.Notifier{Plugin: config.Plugin{Name: "hostile", Type: "hostile", External: ext}, On: hostapi.ChangedX509, Timeout: 10 * time.Second})
	s.Name = "panic" // the guest's behaviour
	h := start(t, &config.Config{
		DaemonMode: true, StateDir: t.TempDir(),
		Issuers: []config.Plugin{plugin("fake-pull", iss)},
		SVIDs:   []config.SVID{s},
	})
	// Loading and compiling the module under -race takes a while: the
	// health listener serves once it is done, before the first write.
	select {
	case <-w.wrote:
	case err := <-h.done:
		h.done <- err
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("timed out waiting for the first write")
	}
	plug := map[string]string{"plugin": "hostile", "runtime": "wasm"}
	h.waitMetric(t, "svidagent_plugins_restarts_total", plug, func(v float64) bool { return v >= 1 })
	h.waitMetric(t, "svidagent_plugins_calls_total",
		map[string]string{"plugin": "hostile", "runtime": "wasm", "method": "Notify", "result": "error"}, func(v float64) bool { return v >= 2 })
	h.waitMetric(t, "svidagent_svid_errors_total", map[string]string{"svid": "panic", "stage": "notify"}, func(v float64) bool { return v >= 2 })
	fams := h.scrapeMetrics(t)
	if v, _ := metricValue(fams, "svidagent_plugins_calls_total",
		map[string]string{"plugin": "hostile", "runtime": "wasm", "method": "Configure", "result": "ok"}); v < 1 {
		t.Errorf("Configure calls ok = %v, want at least 1", v)
	}
	if v, _ := metricValue(fams, "svidagent_plugins_call_duration_seconds",
		map[string]string{"plugin": "hostile", "runtime": "wasm", "method": "Notify"}); v < 2 {
		t.Errorf("Notify latencies observed = %v, want at least 2", v)
	}

	var got *agent.PluginStatus
	st := h.status(t)
	for i := range st.Plugins {
		if st.Plugins[i].Name == "hostile" {
			got = &st.Plugins[i]
		}
	}
	if got == nil {
		t.Fatalf("no plugin hostile in %+v", st.Plugins)
	}
	if got.Runtime != "wasm" || got.SHA256 != sum || got.Kind != "notifier" || got.Restarts < 1 ||
		got.State == agent.PluginOK || !strings.Contains(got.LastError, "Internal") {
		t.Errorf("status of the plugin: %+v; want wasm, sha256 %s, restarts >= 1, not ok, an Internal last error", *got, sum)
	}
}
