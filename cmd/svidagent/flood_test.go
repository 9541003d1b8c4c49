package main_test

import (
	"encoding/json"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoGuest builds internal/plugin/wasmrt's test guest, a notifier whose
// behaviour the svid block's name selects; "loud" fails every Notify with
// a 3 MiB error message.
var echoGuest = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp(testBinDir, "guest-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "notifier.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../../internal/plugin/wasmrt/testdata/guests/notifier")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test guest: %v\n%s", err, b)
	}
	return out, nil
})

// floodCap bounds what one plugin-supplied message may add to a surface:
// adapter's cap, its truncation marker and the host's context.
const floodCap = 2 << 10

// TestPluginErrorFloodIsBounded: a real WASM notifier fails every call
// with a 3 MiB error message. The agent's log, /ready, /live and /status
// each carry a bounded excerpt of it, and a failure is logged once per
// rotation at most.
func TestPluginErrorFloodIsBounded(t *testing.T) {
	wasm, err := echoGuest()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := hashWith(t, wasm)
	if err != nil {
		t.Fatal(err)
	}
	const huge = 3 << 20
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`
state_dir = "state"

health {
  enabled = true
  address = %q
}

plugin "loud" {
  wasm   = %q
  sha256 = %q
}

issuer "dev" {
  ttl = "4s"
}

svid "loud" {
  spiffe_id = "spiffe://example.org/loud"
  writer "files" {
    dir = "out"
  }
  notifier "loud" {}
}
`, addr, wasm, sum))

	p := startAgent(t, dir, "run", "-config", "agent.hcl", "-log-format", "json")
	base := "http://" + addr
	var st struct {
		SVIDs []struct {
			Notifiers []struct {
				Calls     uint64 `json:"calls"`
				LastError string `json:"last_error"`
			} `json:"notifiers"`
		} `json:"svids"`
	}
	testkit.WaitFor(t, 60*time.Second, "three failed notifications", func() bool {
		b, code := get(base + "/status")
		if code != http.StatusOK || json.Unmarshal(b, &st) != nil || len(st.SVIDs) == 0 || len(st.SVIDs[0].Notifiers) == 0 {
			return false
		}
		n := st.SVIDs[0].Notifiers[0]
		return n.Calls >= 3 && n.LastError != ""
	})
	if got := st.SVIDs[0].Notifiers[0].LastError; len(got) > floodCap || !strings.Contains(got, "bytes truncated") {
		t.Errorf("/status notifier last_error is %d bytes, want at most %d with a truncation marker", len(got), floodCap)
	}
	for _, path := range []string{"/ready", "/live", "/status"} {
		b, _ := get(base + path)
		// /status names the error twice (the notifier and the plugin).
		if len(b) > 4*floodCap+4<<10 {
			t.Errorf("%s serves %d bytes for a %d-byte plugin error", path, len(b), huge)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	log := p.out.String()
	// The plugin's own failure (after five, the open breaker's is another
	// one) is logged once per rotation: a repeat of the same serial is a
	// count, not a line.
	perSerial := map[string]int{}
	for line := range strings.Lines(log) {
		if len(line) > floodCap+2<<10 {
			t.Errorf("a %d-byte log line: %.300s…", len(line), line)
		}
		if strings.Contains(line, `"msg":"notifying failed`) && !strings.Contains(line, "circuit breaker open") {
			var rec struct{ Serial string }
			_ = json.Unmarshal([]byte(line), &rec)
			perSerial[rec.Serial]++
		}
	}
	if len(perSerial) == 0 {
		t.Error("no failed notification was logged")
	}
	for serial, n := range perSerial {
		if n != 1 {
			t.Errorf("the failure of rotation %q was logged %d times, want once", serial, n)
		}
	}
}

// get returns the body and status code of a GET of url.
func get(url string) ([]byte, int) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

// loudPlugin builds testdata/loud, a go-plugin notifier with terminal
// escapes in its name and in its multi-MiB error.
var loudPlugin = sync.OnceValues(func() (string, error) {
	out := filepath.Join(testBinDir, "loud")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/loud")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building testdata/loud: %v\n%s", err, b)
	}
	return out, nil
})

// TestStatusCLIEscapesLivePlugin: a real go-plugin notifier names itself
// and fails with raw terminal escapes and megabytes of text. The agent's
// /status carries a bounded, escaped excerpt, and `svidagent status`
// prints no control byte of it.
func TestStatusCLIEscapesLivePlugin(t *testing.T) {
	bin, err := loudPlugin()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := hashWith(t, bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`
state_dir = "state"

health {
  enabled = true
  address = %q
}

plugin "loud" {
  command = %q
  sha256  = %q
}

issuer "dev" {}

svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
  notifier "loud" {}
}
`, addr, bin, sum))
	p := startAgent(t, dir, "run", "-config", "agent.hcl", "-log-format", "json")
	base := "http://" + addr
	var body []byte
	testkit.WaitFor(t, 60*time.Second, "the notifier's failure in /status", func() bool {
		var code int
		body, code = get(base + "/status")
		return code == http.StatusOK && strings.Contains(string(body), `pwned`)
	})
	if len(body) > 4*floodCap+4<<10 {
		t.Errorf("/status is %d bytes", len(body))
	}
	if !strings.Contains(string(body), `\\x1b]0;pwned\\a\\x1b[2J`) {
		t.Errorf("/status lacks the escaped error:\n%.2000s", body)
	}

	out, err := exec.Command(agentBin, "status", "-addr", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("svidagent status: %v\n%s", err, out)
	}
	for i, c := range string(out) {
		if c != '\n' && (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f)) {
			t.Fatalf("svidagent status printed a raw %U at byte %d:\n%q", c, i, out)
		}
	}
	for _, want := range []string{`loud\x1b[31m`, `\x1b]0;pwned\a\x1b[2J`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("svidagent status lacks %q:\n%s", want, out)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}
