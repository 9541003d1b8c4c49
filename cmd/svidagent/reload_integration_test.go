package main_test

import (
	"encoding/json"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// saveAs replaces path by rename, as editors save.
func saveAs(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp~"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// statusDoc is the part of /status the reload test reads.
type statusDoc struct {
	SVIDs []struct {
		Name string `json:"name"`
	} `json:"svids"`
	Plugins []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	} `json:"plugins"`
	Reload *struct {
		Reloads uint64 `json:"reloads"`
		Result  string `json:"result"`
		Error   string `json:"error"`
	} `json:"reload"`
}

func getStatus(t *testing.T, base string) statusDoc {
	t.Helper()
	var st statusDoc
	resp, err := http.Get(base + "/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// reloads returns svidagent_config_reloads_total{result} from /metrics.
func reloads(base, result string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^svidagent_config_reloads_total\{result="` + result + `"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func (st statusDoc) pluginSHA(name string) string {
	for _, p := range st.Plugins {
		if p.Name == name {
			return p.SHA256
		}
	}
	return ""
}

// withCustomSection returns a copy of the WASM module at src with a
// custom section appended: a valid module with different content.
func withCustomSection(t *testing.T, src, dst, payload string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	name := "svidagent-test"
	body := append([]byte{byte(len(name))}, name...)
	body = append(body, payload...)
	if len(body) > 127 {
		t.Fatal("payload too long for a one-byte LEB128 size")
	}
	b = append(b, 0, byte(len(body)))
	b = append(b, body...)
	if err := os.WriteFile(dst+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRealBinary drives reloads of the real binary, checked
// through /status, /metrics, the files written and the log: a new svid
// block by rename-on-save, an invalid config by SIGHUP, and a WASM
// notifier whose file changes without and then with its new sha256.
func TestReloadRealBinary(t *testing.T) {
	bins, err := webhookPlugins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "hook.wasm")
	withCustomSection(t, bins[0], wasm, "v1")
	sum1, err := hashWith(t, wasm)
	if err != nil {
		t.Fatal(err)
	}
	hooks := newHookServer(t)
	hostPort := strings.TrimPrefix(hooks.URL, "http://")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	cfgFor := func(sum string, extra string) string {
		return fmt.Sprintf(`
state_dir = "state"

plugin "hook" {
  wasm   = "hook.wasm"
  sha256 = %q
  config {
    url = "%s/hook"
  }
  allow {
    hosts = [%q]
  }
}

issuer "dev" {
  trust_domain = "example.org"
  ttl          = "4s"
}

svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out/web"
  }
  notifier "hook" {}
}
%s
health {
  enabled = true
  address = "127.0.0.1:%d"
}
`, sum, hooks.URL, hostPort, extra, port)
	}
	apiBlock := `
svid "api" {
  spiffe_id = "spiffe://example.org/api"
  writer "files" {
    dir = "out/api"
  }
}
`
	path := filepath.Join(dir, "agent.hcl")
	writeFile(t, path, cfgFor(sum1, ""))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	testkit.WaitFor(t, 60*time.Second, "the agent ready", func() bool { return httpStatus(base+"/ready") == http.StatusOK })
	if got := getStatus(t, base).pluginSHA("hook"); got != sum1 {
		t.Errorf("/status plugin hook sha256 = %q, want %q", got, sum1)
	}

	// 1. A new svid block, by rename-on-save: the watcher reloads, the
	// block's files are written and it shows in /status.
	saveAs(t, path, cfgFor(sum1, apiBlock))
	testkit.WaitFor(t, 30*time.Second, "out/api/svid.pem", func() bool {
		_, err := os.Stat(filepath.Join(dir, "out/api/svid.pem"))
		return err == nil
	})
	testkit.WaitFor(t, 10*time.Second, "api in /status", func() bool {
		st := getStatus(t, base)
		return len(st.SVIDs) == 2 && st.SVIDs[1].Name == "api" && st.Reload != nil && st.Reload.Result == "ok"
	})
	if got := reloads(base, "ok"); got != "1" {
		t.Errorf(`reloads_total{result="ok"} = %q, want 1`, got)
	}

	// 2. An invalid config, by SIGHUP (the watcher sees it too; either
	// way it is counted once per content): the old one keeps running and
	// rotating, the error is logged with file:line:col and counted.
	invalid := strings.Replace(cfgFor(sum1, apiBlock), `ttl          = "4s"`, `ttl          = "4s"
  bogus        = true`, 1)
	saveAs(t, path, invalid)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the invalid reload counted", func() bool { return reloads(base, "invalid") != "" && reloads(base, "invalid") != "0" })
	// The counter moves before the log line is through the pipe this test
	// reads (CI saw the check run first): wait for the line itself.
	diag := regexp.MustCompile(`agent\.hcl:\d+:\d+: error`)
	testkit.WaitFor(t, 10*time.Second, "the file:line:col diagnostic in the log", func() bool { return diag.MatchString(p.out.String()) })
	st := getStatus(t, base)
	if st.Reload == nil || st.Reload.Result != "invalid" || !strings.Contains(st.Reload.Error, "bogus") {
		t.Errorf("/status reload = %+v, want invalid naming bogus", st.Reload)
	}
	before, err := os.ReadFile(filepath.Join(dir, "out/web/svid.pem"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "web's files to rotate under the old config", func() bool {
		now, _ := os.ReadFile(filepath.Join(dir, "out/web/svid.pem"))
		return len(now) > 0 && string(now) != string(before)
	})
	if httpStatus(base+"/ready") != http.StatusOK {
		t.Error("not ready after an invalid reload")
	}

	// 3. The plugin file changes, the config does not: the running
	// instance is kept and the mismatch reported with both hashes.
	saveAs(t, path, cfgFor(sum1, apiBlock)) // valid again
	testkit.WaitFor(t, 10*time.Second, "the valid config back", func() bool {
		st := getStatus(t, base)
		return st.Reload != nil && st.Reload.Result == "ok"
	})
	withCustomSection(t, bins[0], wasm, "v2")
	sum2, err := hashWith(t, wasm)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the pin mismatch reported", func() bool {
		st := getStatus(t, base)
		return st.Reload != nil && st.Reload.Result == "failed"
	})
	st = getStatus(t, base)
	if !strings.Contains(st.Reload.Error, sum1) || !strings.Contains(st.Reload.Error, sum2) {
		t.Errorf("/status reload error %q does not name both hashes %s and %s", st.Reload.Error, sum1, sum2)
	}
	if got := st.pluginSHA("hook"); got != sum1 {
		t.Errorf("/status plugin sha256 = %q, want the old %q still running", got, sum1)
	}
	if got := reloads(base, "failed"); got != "1" {
		t.Errorf(`reloads_total{result="failed"} = %q, want 1`, got)
	}

	// 4. The config pins the new file: the plugin is reloaded, and still
	// notifies.
	posts := len(hooks.get("/hook"))
	saveAs(t, path, cfgFor(sum2, apiBlock))
	testkit.WaitFor(t, 30*time.Second, "the plugin reloaded", func() bool {
		st := getStatus(t, base)
		return st.Reload != nil && st.Reload.Result == "ok" && st.pluginSHA("hook") == sum2
	})
	testkit.WaitFor(t, 30*time.Second, "a notification by the new instance", func() bool { return len(hooks.get("/hook")) > posts })
	if got := reloads(base, "ok"); got != "3" {
		t.Errorf(`reloads_total{result="ok"} = %q, want 3`, got)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}
