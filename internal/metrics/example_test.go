package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/svidagent/svidagent/internal/metrics"
)

// A plugin's counter, as the Metrics host service adds it, in the
// exposition.
func ExampleMetrics_AddPluginCounter() {
	m := metrics.New("v1.0.0")
	_ = m.AddPluginCounter("vault", "renewals_total", "Vault token renewals.", map[string]string{"result": "ok"}, 1)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.Contains(l, "svidagent_plugin_vault") {
			fmt.Println(l)
		}
	}
	// Output:
	// # HELP svidagent_plugin_vault_renewals_total Vault token renewals.
	// # TYPE svidagent_plugin_vault_renewals_total counter
	// svidagent_plugin_vault_renewals_total{result="ok"} 1
}
