package examples_test

import (
	"encoding/json"
	"testing"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
)

// TestIssuerStepCAConformance runs the plugin conformance suite over the
// issuer-stepca plugin binary against a real step-ca, set up as
// TestIssuerStepCAEndToEnd sets it up; issue_backend_down stops step-ca.
func TestIssuerStepCAConformance(t *testing.T) {
	bins, err := stepcaBinaries()
	if err != nil {
		t.Fatal(err)
	}
	ca := startStepCA(t, t.TempDir())
	cfg, err := json.Marshal(map[string]string{
		"ca_url":               ca.url,
		"root":                 ca.rootFile,
		"provisioner":          "svidagent",
		"provisioner_key_file": ca.keyFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Target{
		Kind:       hostapi.KindIssuer,
		Path:       bins[1],
		ConfigJSON: cfg,
		// Validate rejects an http ca_url (step-ca is served over https)
		// and a config without root, provisioner and key.
		InvalidConfigJSON: []byte(`{"ca_url":"http://127.0.0.1:1"}`),
		SPIFFEID:          "spiffe://example.org/conformance",
		BackendDown:       ca.stop,
	})
}
