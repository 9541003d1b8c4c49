package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/examples/issuer-vaultpki/internal/vaulttest"
	"github.com/svidagent/svidagent/hostapi"
)

// TestConformance runs the plugin conformance suite over the plugin binary
// (built here) against the Vault API test server; issue_backend_down closes
// the server.
func TestConformance(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "issuer-vaultpki")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}

	srv := vaulttest.New(t, vaulttest.Options{})
	srv.AddToken(vaulttest.Token{ID: tokenID, TTL: time.Hour, Renewable: true})
	srv.AddRole("svid", vaulttest.Role{AllowedURISANs: []string{"spiffe://example.org/*"}, MaxTTL: 2 * time.Hour})
	cfg, err := json.Marshal(map[string]string{"address": srv.URL, "token": tokenID, "role": "svid"})
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Target{
		Kind:       hostapi.KindIssuer,
		Path:       bin,
		ConfigJSON: cfg,
		// Validate rejects a non-http(s) address, a missing token and a
		// role with a slash.
		InvalidConfigJSON: []byte(`{"address":"ftp://vault","role":"a/b"}`),
		SPIFFEID:          "spiffe://example.org/conformance",
		BackendDown:       srv.Close,
	})
}
