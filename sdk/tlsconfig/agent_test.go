package tlsconfig_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

// TestRotationByTheRealAgent runs the real agent (dev issuer, 3s SVIDs)
// writing a server's and a client's credentials, and a client loop
// handshaking continuously across several rotations: no handshake may fail,
// and the server must present several successive serials.
func TestRotationByTheRealAgent(t *testing.T) {
	for _, layout := range []string{"data", "spiffe-fs"} {
		t.Run(layout, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := config.Parse([]byte(fmt.Sprintf(`
issuer "dev" {
  trust_domain = "example.org"
  ttl          = "3s"
}
svid "server" {
  spiffe_id = "spiffe://example.org/server"
  writer "files" {
    dir    = %q
    layout = %q
  }
}
svid "client" {
  spiffe_id = "spiffe://example.org/client"
  writer "files" {
    dir    = %q
    layout = %q
  }
}
`, filepath.Join(dir, "server"), layout, filepath.Join(dir, "client"), layout)), "agent.hcl")
			if err != nil {
				t.Fatal(config.FormatError(err, nil))
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- agent.New(cfg).Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("agent: %v", err)
				}
			}()

			ssrc := newSource(t, tlsconfig.WithDir(filepath.Join(dir, "server")))
			csrc := newSource(t, tlsconfig.WithDir(filepath.Join(dir, "client")))
			srv := startServer(t, tlsconfig.ServerConfig(ssrc, tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/client"))))
			cli := tlsconfig.ClientConfig(csrc, tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/server")))

			serials := map[string]bool{}
			deadline := time.Now().Add(60 * time.Second)
			handshakes := 0
			for len(serials) < 4 { // the first SVID and three rotations
				if time.Now().After(deadline) {
					t.Fatalf("saw %d serials in 60s; the agent did not rotate", len(serials))
				}
				serial, err := dial(srv.addr(), cli)
				if err != nil {
					t.Fatalf("handshake %d failed across the agent's rotations: %v", handshakes, err)
				}
				handshakes++
				serials[serial.String()] = true
			}
			t.Logf("%s: %d handshakes, %d serials, no failure", layout, handshakes, len(serials))
		})
	}
}
