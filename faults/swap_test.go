package faults_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// TestPluginFileSwapped replaces a pinned plugin's file on disk, for both
// runtimes: after `svidagent validate` passed and before `run`, and under
// a running agent before a reload that reopens the plugin. The start and
// the reload fail with one wording for both runtimes that names the file
// and both hashes; a swapped file never runs; at reload the running
// instance keeps being notified.
func TestPluginFileSwapped(t *testing.T) {
	dir := t.TempDir()
	cmdBin, cmdSum, wasmBin, wasmSum := buildMisbehave(t, dir)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	srv := fakeworkloadapi.New(t)
	rotate := func() string {
		s := ca.X509SVID(t, spiffeid.RequireFromPath(td, "/swap"))
		srv.SetX509([]*x509svid.SVID{s}, bundles)
		return serialHex(s.Certificates[0])
	}
	rotate()

	for _, tc := range []struct{ runtime, bin, sum string }{
		{"command", cmdBin, cmdSum},
		{"wasm", wasmBin, wasmSum},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			sub := filepath.Join(dir, tc.runtime)
			if err := os.MkdirAll(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			good, err := os.ReadFile(tc.bin)
			if err != nil {
				t.Fatal(err)
			}
			plugin := filepath.Join(sub, "plugin-"+tc.runtime)
			writeFile(t, plugin, string(good))
			if err := os.Chmod(plugin, 0o700); err != nil {
				t.Fatal(err)
			}
			// The swapped file differs by one appended byte: still a
			// runnable executable, so only the pin can stop it.
			swap := func() { writeFile(t, plugin, string(good)+"\x00") }
			restore := func() { writeFile(t, plugin, string(good)) }
			port := freePort(t)
			config := func(mode string) string {
				return fmt.Sprintf("state_dir = \"state\"\n\nplugin \"p\" {\n  %s = %q\n  sha256 = %q\n  config {\n    mode = %q\n  }\n}\n",
					tc.runtime, plugin, tc.sum, mode) +
					nativeConfig(srv.Addr(), filepath.Join(sub, "out"), "flat", port, "  notifier \"p\" {}\n")
			}
			wantErr := func(t *testing.T, msg string) {
				t.Helper()
				for _, w := range []string{"(" + plugin + "): sha256 mismatch", "config pins " + tc.sum + ", file has "} {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not say %q", msg, w)
					}
				}
			}

			// Between validate and run.
			writeFile(t, filepath.Join(sub, "agent.hcl"), config("ok"))
			validate := exec.Command(agentBin, "validate", "-config", "agent.hcl")
			validate.Dir = sub
			if out, err := validate.CombinedOutput(); err != nil {
				t.Fatalf("validate before the swap: %v\n%s", err, out)
			}
			swap()
			var stderr bytes.Buffer
			run := exec.Command(agentBin, "run", "-config", "agent.hcl")
			run.Dir, run.Stderr = sub, &stderr
			if err := run.Run(); err == nil {
				t.Fatal("run with a swapped plugin file succeeded")
			}
			wantErr(t, stderr.String())
			t.Logf("run: %s", strings.TrimSpace(stderr.String()))

			// At a reload that reopens the plugin (its config changed).
			restore()
			p := startAgent(t, sub, "run", "-config", "agent.hcl")
			serial := rotate()
			p.waitLog(t, 0, 60*time.Second, "the plugin's first notification", notifiedBy("p", serial))
			swap()
			from := p.numRecords()
			writeFile(t, filepath.Join(sub, "agent.hcl"), config("ok "))
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			i := p.waitLog(t, from, 30*time.Second, "the failed reload", func(r logRecord) bool {
				return r.Msg == "reloading the configuration failed"
			})
			wantErr(t, p.record(i).Error)
			t.Logf("reload: %s", p.record(i).Error)
			if code, _ := (health{fmt.Sprintf("http://127.0.0.1:%d", port)}).live(); code != 200 {
				t.Fatalf("/live = %d after the failed reload, want 200", code)
			}
			serial = rotate()
			p.waitLog(t, from, 60*time.Second, "the running instance notified after the failed reload", notifiedBy("p", serial))
		})
	}
}
