package filewatch_test

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/testca"
)

// The agent republishes a Kubernetes-style Secret mount through the files
// writer, and rotates the output when the mount rotates.
func TestAgentRepublishes(t *testing.T) {
	ca := testca.New(t, td)
	src := filepath.Join(t.TempDir(), "secret")
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &atomicWriter{dir: src}
	a, b := newPair(t, ca), newPair(t, ca)
	w.write(t, a)

	cfg, err := config.Parse([]byte(fmt.Sprintf(`
issuer "legacy" {
  type     = "files"
  dir      = %q
  debounce = "20ms"
}

svid "web" {
  writer "files" {
    dir = %q
  }
}
`, src, out)), "agent.hcl")
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ag := agent.New(cfg, agent.WithRetry(10*time.Millisecond, 100*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return after cancel")
		}
	}()

	waitForOutput(t, out, a.serial)
	w.write(t, b)
	waitForOutput(t, out, b.serial)
}

// waitForOutput polls the files writer's output until it holds a valid
// set with the leaf serial want. Polling: the test has no event to wait on
// outside the agent.
func waitForOutput(t *testing.T, dir string, want *big.Int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	var last error
	for time.Now().Before(deadline) {
		last = checkOutput(dir, want)
		if last == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the agent's output never held serial %x: %v", want, last)
}

func checkOutput(dir string, want *big.Int) error {
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "svid_key.pem"))
	if err != nil {
		return err
	}
	if got := svid.Certificates[0].SerialNumber; got.Cmp(want) != 0 {
		return fmt.Errorf("serial %x", got)
	}
	bundle, err := x509bundle.Load(td, filepath.Join(dir, "svid_bundle.pem"))
	if err != nil {
		return err
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		return fmt.Errorf("the written chain does not verify against the written bundle: %w", err)
	}
	if svid.ID != webID {
		return fmt.Errorf("SPIFFE ID %s", svid.ID)
	}
	return nil
}

// A one-shot fetch (daemon_mode = false) goes through Issue: the key read
// from the directory is written, not one the core generated.
func TestAgentFetch(t *testing.T) {
	ca := testca.New(t, td)
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	a := newPair(t, ca)
	writeRenamed(t, src, a)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
daemon_mode = false
issuer "legacy" {
  type = "files"
  dir  = %q
}
svid "web" {
  writer "files" {
    dir = %q
  }
}
`, src, out)), "agent.hcl")
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	if err := agent.New(cfg).Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if err := checkOutput(out, a.serial); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(out, "svid_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != string(a.key) {
		t.Error("the written key is not the one in the source directory")
	}
}
