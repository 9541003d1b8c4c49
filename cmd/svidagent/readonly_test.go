//go:build linux

package main_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvRequireNamespaces makes TestReadOnlyRoot fail, instead of skip, where
// it cannot make a private mount namespace (set it in CI, which runs as
// root).
const EnvRequireNamespaces = "SVIDAGENT_REQUIRE_NAMESPACES"

// privateMountNamespace reports why this machine cannot run a command in a
// private mount namespace, or "" if it can.
func privateMountNamespace() string {
	if _, err := exec.LookPath("unshare"); err != nil {
		return "unshare (util-linux) is not installed"
	}
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "true").CombinedOutput(); err != nil {
		return fmt.Sprintf("unshare -m is not permitted here (needs root or CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// TestReadOnlyRoot runs the real agent with / (and /dev/shm) remounted
// read-only in a private mount namespace, tmpfs at its state and output
// directories only, and the default $TMPDIR (/tmp, read-only there). It
// loads a WASM and a go-plugin (command) notifier, which use the state
// directory (compile cache, pinned copies, sockets), and checks readiness
// and rotations. The output directory is read through /proc/<pid>/root,
// which resolves inside the agent's mount namespace.
func TestReadOnlyRoot(t *testing.T) {
	if why := privateMountNamespace(); why != "" {
		if os.Getenv(EnvRequireNamespaces) != "" {
			t.Fatalf("%s is set but %s", EnvRequireNamespaces, why)
		}
		t.Skipf("cannot check a read-only root on this machine: %s (set %s=1 to make this a failure)", why, EnvRequireNamespaces)
	}
	bins, err := webhookPlugins()
	if err != nil {
		t.Fatal(err)
	}
	wasmSum, err := hashWith(t, bins[0])
	if err != nil {
		t.Fatal(err)
	}
	cmdSum, err := hashWith(t, bins[1])
	if err != nil {
		t.Fatal(err)
	}
	hooks := newHookServer(t)
	hostPort := strings.TrimPrefix(hooks.URL, "http://")
	port := freePort(t)

	dir := t.TempDir()
	state, out := filepath.Join(dir, "state"), filepath.Join(dir, "out")
	for _, d := range []string{state, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "agent.hcl")
	writeFile(t, cfg, fmt.Sprintf(`
state_dir = %q

plugin "webhook-wasm" {
  wasm   = %q
  sha256 = %q
  config {
    url = "%s/wasm"
  }
  allow {
    hosts = [%q]
  }
}

plugin "webhook-cmd" {
  command = %q
  sha256  = %q
  config {
    url = "%s/cmd"
  }
  allow {
    hosts = [%q]
  }
}

issuer "dev" {
  trust_domain = "example.org"
  ttl          = "4s"
}

svid "edge" {
  spiffe_id = "spiffe://example.org/edge"
  writer "files" {
    dir = %q
  }
  notifier "webhook-wasm" {}
  notifier "webhook-cmd" {}
}

health {
  enabled = true
  address = "127.0.0.1:%d"
}
`, state, bins[0], wasmSum, hooks.URL, hostPort, bins[1], cmdSum, hooks.URL, hostPort, out, port))

	// Exit 97: the root was still writable; the agent never started.
	script := `set -e
mount -t tmpfs -o mode=0700 tmpfs "$STATE"
mount -t tmpfs -o mode=0755 tmpfs "$OUT"
mount -o remount,bind,ro /
mount -o remount,bind,ro /dev/shm
for p in "$PROBE" /tmp/svidagent-ro-probe /dev/shm/svidagent-ro-probe; do
  if touch "$p" 2>/dev/null; then echo "still writable: $p" >&2; exit 97; fi
done
exec env HOME=/nonexistent "$AGENT" run -config "$CONFIG"`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "STATE="+state, "OUT="+out, "PROBE="+filepath.Join(dir, "probe"), "AGENT="+agentBin, "CONFIG="+cfg)
	logs := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, out: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("svidagent output:\n%s", logs.String())
		}
	})
	exited := func() bool {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}

	testkit.WaitFor(t, 60*time.Second, "/ready 200", func() bool {
		if exited() {
			t.Fatalf("the agent exited (code %d) before it was ready", cmd.ProcessState.ExitCode())
		}
		return httpStatus(fmt.Sprintf("http://127.0.0.1:%d/ready", port)) == 200
	})
	// unshare and sh exec: the agent is cmd's pid, in the namespace.
	certPath := filepath.Join("/proc", fmt.Sprint(cmd.Process.Pid), "root", out, "svid.pem")
	serials := map[string]bool{}
	testkit.WaitFor(t, 60*time.Second, "3 distinct certificates in the tmpfs output dir", func() bool {
		if exited() {
			t.Fatalf("the agent exited (code %d)", cmd.ProcessState.ExitCode())
		}
		if b, err := os.ReadFile(certPath); err == nil {
			if blk, _ := pem.Decode(b); blk != nil {
				if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
					serials[c.SerialNumber.String()] = true
				}
			}
		}
		return len(serials) >= 3
	})
	testkit.WaitFor(t, 30*time.Second, "both plugin notifiers on 3 deliveries", func() bool {
		return len(hooks.get("/wasm")) >= 3 && len(hooks.get("/cmd")) >= 3
	})
	if _, err := os.Stat(filepath.Join(out, "svid.pem")); !os.IsNotExist(err) {
		t.Errorf("svid.pem visible outside the namespace (%v): the tmpfs leaked", err)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	for _, bad := range []string{"read-only file system", "level=ERROR"} {
		if strings.Contains(strings.ToLower(logs.String()), strings.ToLower(bad)) {
			t.Errorf("agent output mentions %q", bad)
		}
	}
}
