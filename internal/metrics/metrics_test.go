package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/svidagent/svidagent/internal/metrics"
)

// scrape serves m over HTTP and parses the text exposition, as Prometheus
// does.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return fams
}

// value returns the value of the series of family name with exactly the
// given labels, and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
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

func TestMetrics(t *testing.T) {
	m := metrics.New("v9.9.9")
	exp := time.Unix(1900000000, 0)
	m.SVIDExpiry("web", map[string]time.Time{"spiffe://example.org/web": exp}, map[string]time.Time{"spiffe://example.org/web": exp.Add(time.Hour)})
	m.Rotation("web")
	m.Rotation("web")
	m.WriteDuration("web", "files", 2*time.Millisecond)
	m.NotifyDuration("web", "signal", time.Millisecond)
	m.Error("web", metrics.StageWrite)
	m.PluginRestart("hook", "wasm")
	m.PluginCall("hook", "wasm", "Notify", time.Millisecond, nil)
	m.PluginCall("hook", "wasm", "Notify", time.Millisecond, errors.New("boom"))
	m.IssuerBackoff("web", true, 4*time.Second)
	m.ConfigReload(metrics.ReloadInvalid)
	fams := scrape(t, m)

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"x509 expiry", "svidagent_svid_expiry_timestamp_seconds", map[string]string{"svid": "web", "spiffe_id": "spiffe://example.org/web", "type": "x509"}, 1900000000},
		{"jwt expiry", "svidagent_svid_expiry_timestamp_seconds", map[string]string{"svid": "web", "spiffe_id": "spiffe://example.org/web", "type": "jwt"}, 1900003600},
		{"rotations", "svidagent_svid_rotations_total", map[string]string{"svid": "web"}, 2},
		{"write duration count", "svidagent_writer_write_duration_seconds", map[string]string{"svid": "web", "writer": "files"}, 1},
		{"notify duration count", "svidagent_notifier_notify_duration_seconds", map[string]string{"svid": "web", "notifier": "signal"}, 1},
		{"write errors", "svidagent_svid_errors_total", map[string]string{"svid": "web", "stage": "write"}, 1},
		{"restarts", "svidagent_plugins_restarts_total", map[string]string{"plugin": "hook", "runtime": "wasm"}, 1},
		{"ok calls", "svidagent_plugins_calls_total", map[string]string{"plugin": "hook", "runtime": "wasm", "method": "Notify", "result": "ok"}, 1},
		{"failed calls", "svidagent_plugins_calls_total", map[string]string{"plugin": "hook", "runtime": "wasm", "method": "Notify", "result": "error"}, 1},
		{"call latency count", "svidagent_plugins_call_duration_seconds", map[string]string{"plugin": "hook", "runtime": "wasm", "method": "Notify"}, 2},
		{"backoff", "svidagent_issuer_backoff_seconds", map[string]string{"svid": "web"}, 4},
		{"failing", "svidagent_issuer_failing", map[string]string{"svid": "web"}, 1},
		{"reload invalid", "svidagent_config_reloads_total", map[string]string{"result": "invalid"}, 1},
		{"reload ok present at 0", "svidagent_config_reloads_total", map[string]string{"result": "ok"}, 0},
		{"build info", "svidagent_build_info", map[string]string{"version": "v9.9.9", "goversion": runtime.Version()}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := value(fams, tt.metric, tt.labels)
			if !ok {
				t.Fatalf("no series %s%v", tt.metric, tt.labels)
			}
			if got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}

	t.Run("a new delivery replaces the svid's expiry series", func(t *testing.T) {
		m.SVIDExpiry("web", map[string]time.Time{"spiffe://example.org/other": exp}, nil)
		fams := scrape(t, m)
		if n := len(fams["svidagent_svid_expiry_timestamp_seconds"].GetMetric()); n != 1 {
			t.Errorf("%d expiry series, want 1", n)
		}
	})
	t.Run("healthy issuer clears the backoff", func(t *testing.T) {
		m.IssuerFailing("web", false)
		fams := scrape(t, m)
		if v, _ := value(fams, "svidagent_issuer_backoff_seconds", map[string]string{"svid": "web"}); v != 0 {
			t.Errorf("backoff %v, want 0", v)
		}
		if v, _ := value(fams, "svidagent_issuer_failing", map[string]string{"svid": "web"}); v != 0 {
			t.Errorf("failing %v, want 0", v)
		}
	})
	t.Run("ForgetSVID drops its series", func(t *testing.T) {
		m.ForgetSVID("web")
		fams := scrape(t, m)
		if _, ok := value(fams, "svidagent_svid_rotations_total", map[string]string{"svid": "web"}); ok {
			t.Error("rotations of a forgotten svid are still exported")
		}
	})
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	m.Rotation("x")
	m.Error("x", metrics.StageIssue)
	m.ConfigReload(metrics.ReloadOK)
	if err := m.AddPluginCounter("p", "n", "", nil, 1); err != nil {
		t.Fatal(err)
	}
}

func TestTwoAgentsDoNotCollide(t *testing.T) {
	a, b := metrics.New("a"), metrics.New("b")
	a.Rotation("web")
	if _, ok := value(scrape(t, b), "svidagent_svid_rotations_total", map[string]string{"svid": "web"}); ok {
		t.Error("a rotation of one agent shows in another's registry")
	}
}

func TestPluginCounter(t *testing.T) {
	tests := []struct {
		name    string
		plugin  string
		counter string
		labels  map[string]string
		delta   float64
		wantErr error
	}{
		{"first use", "vault", "renewals_total", map[string]string{"result": "ok"}, 1, nil},
		{"second use adds", "vault", "renewals_total", map[string]string{"result": "ok"}, 2, nil},
		{"another series", "vault", "renewals_total", map[string]string{"result": "error"}, 1, nil},
		{"other label names refused", "vault", "renewals_total", map[string]string{"outcome": "ok"}, 1, metrics.ErrInvalidCounter},
		{"negative delta refused", "vault", "renewals_total", map[string]string{"result": "ok"}, -1, metrics.ErrInvalidCounter},
		{"empty name refused", "vault", "--", nil, 1, metrics.ErrInvalidCounter},
		{"reserved label refused", "vault", "x", map[string]string{"__name__": "y"}, 1, metrics.ErrInvalidCounter},
		{"another plugin's name refused", "vault_renewals", "total", map[string]string{"result": "ok"}, 1, metrics.ErrInvalidCounter},
		{"sanitized", "My-Plugin", "token.renewals", nil, 1, nil},
	}
	m := metrics.New("")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.AddPluginCounter(tt.plugin, tt.counter, "Vault token renewals.", tt.labels, tt.delta)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	fams := scrape(t, m)
	if v, _ := value(fams, "svidagent_plugin_vault_renewals_total", map[string]string{"result": "ok"}); v != 3 {
		t.Errorf("renewals{result=ok} = %v, want 3", v)
	}
	if v, _ := value(fams, "svidagent_plugin_vault_renewals_total", map[string]string{"result": "error"}); v != 1 {
		t.Errorf("renewals{result=error} = %v, want 1", v)
	}
	if got := fams["svidagent_plugin_vault_renewals_total"].GetHelp(); got != "Vault token renewals." {
		t.Errorf("help %q", got)
	}
	if v, _ := value(fams, "svidagent_plugin_my_plugin_token_renewals", map[string]string{}); v != 1 {
		t.Errorf("sanitized counter = %v, want 1", v)
	}
}

func TestPluginSeriesCap(t *testing.T) {
	m := metrics.New("")
	for i := range metrics.MaxSeriesPerPlugin {
		if err := m.AddPluginCounter("p", "c", "", map[string]string{"i": fmt.Sprint(i)}, 1); err != nil {
			t.Fatalf("series %d: %v", i, err)
		}
	}
	err := m.AddPluginCounter("p", "c", "", map[string]string{"i": "one too many"}, 1)
	if !errors.Is(err, metrics.ErrTooManySeries) {
		t.Fatalf("err = %v, want ErrTooManySeries", err)
	}
	if err := m.AddPluginCounter("p", "c", "", map[string]string{"i": "0"}, 1); err != nil {
		t.Errorf("an existing series is refused at the cap: %v", err)
	}
	if err := m.AddPluginCounter("q", "c", "", nil, 1); err != nil {
		t.Errorf("the cap of one plugin limits another: %v", err)
	}
	fams := scrape(t, m)
	if n := len(fams["svidagent_plugin_p_c"].GetMetric()); n != metrics.MaxSeriesPerPlugin {
		t.Errorf("%d series exported, want %d", n, metrics.MaxSeriesPerPlugin)
	}
}

// TestHammer records and scrapes concurrently, for -race.
func TestHammer(t *testing.T) {
	m := metrics.New("")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				svid := fmt.Sprint("s", g%3)
				m.Rotation(svid)
				m.SVIDExpiry(svid, map[string]time.Time{"spiffe://td/x": time.Now()}, nil)
				m.IssuerBackoff(svid, i%2 == 0, time.Second)
				m.PluginCall("p", "wasm", "Notify", time.Millisecond, nil)
				_ = m.AddPluginCounter(fmt.Sprint("p", g), "c", "", map[string]string{"i": fmt.Sprint(i % 150)}, 1)
				if i%50 == 0 {
					m.ForgetSVID(svid)
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				resp, err := http.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), "svidagent_build_info") {
					t.Errorf("scrape: %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
}

// TestSVIDExpiryReplacesOnlyItsOwnSeries delivers to two svid blocks: a
// delivery drops the block's series it no longer carries (an ID, or a type
// of an ID) and leaves the other block's alone.
func TestSVIDExpiryReplacesOnlyItsOwnSeries(t *testing.T) {
	m := metrics.New("v1")
	exp := time.Unix(2_000_000_000, 0)
	a, b := "spiffe://td/a", "spiffe://td/b"
	m.SVIDExpiry("one", map[string]time.Time{a: exp, b: exp}, map[string]time.Time{a: exp})
	m.SVIDExpiry("two", map[string]time.Time{a: exp}, nil)
	m.SVIDExpiry("one", map[string]time.Time{a: exp.Add(time.Hour)}, nil)

	fams := scrape(t, m)
	series := func(svid, id, typ string) (float64, bool) {
		return value(fams, "svidagent_svid_expiry_timestamp_seconds", map[string]string{"svid": svid, "spiffe_id": id, "type": typ})
	}
	if v, ok := series("one", a, metrics.TypeX509); !ok || v != float64(exp.Add(time.Hour).Unix()) {
		t.Errorf("one/a/x509 = %v, %v; want the new expiry", v, ok)
	}
	for _, gone := range [][2]string{{b, metrics.TypeX509}, {a, metrics.TypeJWT}} {
		if _, ok := series("one", gone[0], gone[1]); ok {
			t.Errorf("one/%s/%s is still exported after a delivery without it", gone[0], gone[1])
		}
	}
	if v, ok := series("two", a, metrics.TypeX509); !ok || v != float64(exp.Unix()) {
		t.Errorf("two/a/x509 = %v, %v; want it untouched by one's delivery", v, ok)
	}
	if n := len(fams["svidagent_svid_expiry_timestamp_seconds"].GetMetric()); n != 2 {
		t.Errorf("%d expiry series, want 2", n)
	}
}

// TestRuntimeCollectors checks that the Go runtime and process collectors,
// registered only when the registry is first served or handed out, are
// there for a scrape and for Registry's callers.
func TestRuntimeCollectors(t *testing.T) {
	fams := scrape(t, metrics.New("v"))
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes"} {
		if fams[name] == nil {
			t.Errorf("a scrape has no %s", name)
		}
	}
	if runtime.GOOS == "linux" && fams["process_start_time_seconds"] == nil {
		t.Error("a scrape on Linux has no process_start_time_seconds")
	}
	gathered, err := metrics.New("v").Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range gathered {
		found = found || f.GetName() == "go_goroutines"
	}
	if !found {
		t.Error("Registry().Gather() has no go_goroutines")
	}
}
