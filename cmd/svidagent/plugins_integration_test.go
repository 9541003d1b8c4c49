package main_test

// Integration test of external plugins: the example webhook notifier,
// built in the test run both as a WASM module and as a go-plugin
// executable, wired into one svid block of a real agent against a real
// SPIRE, fires on the initial delivery and on a real rotation.

import (
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/spiretest"
)

// webhookPlugins builds examples/notifier-webhook twice, once per test
// binary: as a WASM module and as a go-plugin executable, into the test
// binary's directory that TestMain removes.
var webhookPlugins = sync.OnceValues(func() ([2]string, error) {
	var out [2]string
	dir, err := os.MkdirTemp(testBinDir, "svidagent-webhook-")
	if err != nil {
		return out, err
	}
	out[0], out[1] = filepath.Join(dir, "notifier-webhook.wasm"), filepath.Join(dir, "notifier-webhook")
	for _, b := range []struct {
		out  string
		args []string
		env  []string
	}{
		{out[0], []string{"-buildmode=c-shared"}, []string{"GOOS=wasip1", "GOARCH=wasm"}},
		{out[1], nil, []string{"CGO_ENABLED=0"}},
	} {
		args := append(append([]string{"build"}, b.args...), "-o", b.out, "../../examples/notifier-webhook")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), b.env...)
		if o, err := cmd.CombinedOutput(); err != nil {
			return out, fmt.Errorf("building %s: %v\n%s", b.out, err, o)
		}
	}
	return out, nil
})

// hookServer records the POSTs it receives, by path.
type hookServer struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string][]string
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{posts: map[string][]string{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost {
			h.mu.Lock()
			h.posts[r.URL.Path] = append(h.posts[r.URL.Path], string(body))
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) get(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.posts[path]...)
}

func TestExternalNotifiersFireOnRotation(t *testing.T) {
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

	spire := spiretest.Start(t, spiretest.Options{X509TTL: 20 * time.Second})
	id := "spiffe://" + spire.TrustDomain() + "/hooked"
	spire.CreateEntry(t, id, spiretest.UIDSelector())
	hooks := newHookServer(t)
	hostPort := strings.TrimPrefix(hooks.URL, "http://")

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`
state_dir = "state"

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

issuer "spire" {
  type    = "workloadapi"
  address = "unix://%s"
}

svid "hooked" {
  writer "files" {
    dir = "out"
  }
  notifier "webhook-wasm" {}
  notifier "webhook-cmd" {}
}
`, bins[0], wasmSum, hooks.URL, hostPort, bins[1], cmdSum, hooks.URL, hostPort, spire.SocketPath()))

	// validate opens both plugins and runs their own Validate.
	v := startAgent(t, dir, "validate", "-config", "agent.hcl")
	<-v.done
	if code := v.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("validate exit code %d:\n%s", code, v.out)
	}

	p := startAgent(t, dir, "run", "-config", "agent.hcl", "-log-level", "debug")
	out := filepath.Join(dir, "out")
	testkit.WaitFor(t, 60*time.Second, "both notifiers on the initial delivery", func() bool {
		return len(hooks.get("/wasm")) > 0 && len(hooks.get("/cmd")) > 0
	})
	first := checkX509Files(t, out, id)
	for _, path := range []string{"/wasm", "/cmd"} {
		body := hooks.get(path)[0]
		if !strings.Contains(body, "hooked") {
			t.Errorf("%s: first POST %q does not name the svid block", path, body)
		}
	}
	nWASM, nCmd := len(hooks.get("/wasm")), len(hooks.get("/cmd"))

	testkit.WaitFor(t, 60*time.Second, "an X.509 rotation", func() bool {
		svid, err := x509svid.Load(filepath.Join(out, "svid.pem"), filepath.Join(out, "svid_key.pem"))
		return err == nil && svid.Certificates[0].SerialNumber.Cmp(first.SerialNumber) != 0
	})
	testkit.WaitFor(t, 30*time.Second, "both notifiers on the rotation", func() bool {
		return len(hooks.get("/wasm")) > nWASM && len(hooks.get("/cmd")) > nCmd
	})
	if fi, err := os.Stat(filepath.Join(dir, "state")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v; want mode 0700", err)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if t.Failed() {
		return
	}
	t.Logf("POSTs: wasm %d, command %d", len(hooks.get("/wasm")), len(hooks.get("/cmd")))
}

// hashWith runs `svidagent plugin hash` on path.
func hashWith(t *testing.T, path string) (string, error) {
	t.Helper()
	b, err := exec.Command(agentBin, "plugin", "hash", path).Output()
	if err != nil {
		return "", fmt.Errorf("svidagent plugin hash %s: %w", path, err)
	}
	sum := strings.TrimSpace(string(b))
	if len(sum) != 64 {
		return "", fmt.Errorf("svidagent plugin hash printed %q", sum)
	}
	return sum, nil
}

func TestPluginInspectAndHash(t *testing.T) {
	bins, err := webhookPlugins()
	if err != nil {
		t.Fatal(err)
	}
	notPlugin := filepath.Join(t.TempDir(), "notes.txt")
	writeFile(t, notPlugin, "hello")
	cmdSum, err := hashWith(t, bins[1])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{name: "wasm", args: []string{"plugin", "inspect", bins[0]}, contains: []string{
			"runtime:      wasm", "abi:          v1", "kinds:        notifier", "svidagent.plugin.notifier.v1.Notifier", "sha256:       "}},
		{name: "command pinned", args: []string{"plugin", "inspect", "-sha256", cmdSum, bins[1]}, contains: []string{
			"runtime:      command", "kinds:        notifier", "svidagent.plugin.v1.Plugin", "sha256:       " + cmdSum}},
		{name: "command allowed", args: []string{"plugin", "inspect", "-allow-exec", bins[1]}, contains: []string{
			"runtime:      command", "kinds:        notifier"}},
		{name: "command unpinned", args: []string{"plugin", "inspect", bins[1]}, code: 1, contains: []string{"refusing to run", "-allow-exec"}},
		{name: "wasm json", args: []string{"plugin", "inspect", "-json", bins[0]}, contains: []string{`"runtime": "wasm"`, `"kinds": [`}},
		{name: "not a plugin", args: []string{"plugin", "inspect", notPlugin}, code: 1, contains: []string{"neither a WebAssembly module"}},
		{name: "hash missing file", args: []string{"plugin", "hash", filepath.Join(t.TempDir(), "none")}, code: 1, contains: []string{"hashing plugin"}},
		{name: "no subcommand", args: []string{"plugin"}, code: 2, contains: []string{"missing subcommand"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(agentBin, tt.args...)
			b, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tt.code {
				t.Errorf("exit code %d, want %d:\n%s", code, tt.code, b)
			}
			for _, want := range tt.contains {
				if !strings.Contains(string(b), want) {
					t.Errorf("output lacks %q:\n%s", want, b)
				}
			}
		})
	}
	// The sha256 inspect prints is the one hash prints.
	sum, err := hashWith(t, bins[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := exec.Command(agentBin, "plugin", "inspect", bins[0]).Output()
	if !strings.Contains(string(b), sum) {
		t.Errorf("inspect does not print the sha256 %s:\n%s", sum, b)
	}
}

// TestValidateShowsPluginProblems: validate runs the plugin's own
// Validate and shows its problems against the config {} block; a wrong
// pin is reported with both hashes.
func TestValidateShowsPluginProblems(t *testing.T) {
	bins, err := webhookPlugins()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := hashWith(t, bins[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`issuer "dev" {}
plugin "hook" {
  wasm   = %q
  sha256 = %q
  config {
    nonsense = true
  }
}
plugin "pinned" {
  wasm   = %q
  sha256 = "%s"
}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
  notifier "hook" {}
  notifier "pinned" {}
}
`, bins[0], sum, bins[0], strings.Repeat("0", 64)))
	p := startAgent(t, dir, "validate", "-config", "agent.hcl")
	<-p.done
	out := p.out.String()
	if code := p.cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("exit code %d, want 2:\n%s", code, out)
	}
	// The webhook plugin's problems (no url, an unknown field) point at
	// the config block (line 5) or the attribute (line 6).
	if !strings.Contains(out, "agent.hcl:5:") && !strings.Contains(out, "agent.hcl:6:") {
		t.Errorf("no plugin problem points into the config block:\n%s", out)
	}
	for _, want := range []string{"Invalid hook plugin setting", "agent.hcl:9:1: error: Plugin cannot be loaded", sum} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}
