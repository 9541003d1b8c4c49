package faults_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/testkit"
)

// TestHostileWASMWriter runs, in one live agent beside the built-in files
// writer and a healthy WASM notifier, a WASM writer that tries on every
// rotation to leave its grant (testdata/hostilewriter: links to the root
// and to a secret, hard links, "..", absolute paths, the agent's own key
// and state directory, the host environment), and a second instance of it
// that reports a path outside /out. Asserted, over three rotations:
//
//   - every trick is denied, nothing is planted or changed outside the
//     grant, and the guest left no link in its directory;
//   - the built-in writer and the healthy notifier get every rotation,
//     /live stays 200 (and /ready 503: hostile-bad never delivers);
//   - the writer that reports /etc/passwd fails each write with an error
//     naming the path, shown in /status, and the agent stays up.
func TestHostileWASMWriter(t *testing.T) {
	dir := t.TempDir()
	hostile := filepath.Join(dir, "hostilewriter.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", hostile, "./testdata/hostilewriter")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the hostile writer: %v\n%s", err, out)
	}
	code, err := os.ReadFile(hostile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(code)
	_, _, okWasm, okSum := buildMisbehave(t, dir)

	secret := filepath.Join(dir, "secret", "secret.txt")
	plant := filepath.Join(dir, "plant")
	for _, d := range []string{filepath.Dir(secret), plant} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, secret, "s3cret")
	out := filepath.Join(dir, "out")
	state := filepath.Join(dir, "state")
	grant, badGrant := filepath.Join(dir, "hostile"), filepath.Join(dir, "hostile-bad")
	cfg := func(name, writeDir string, badPath bool) string {
		return fmt.Sprintf(`plugin %q {
  wasm   = %q
  sha256 = %q
  config {
    secret   = %q
    plant    = %q
    key      = %q
    state    = %q
    bad_path = %t
  }
  allow { write_dir = %q }
}
`, name, hostile, hex.EncodeToString(sum[:]), secret, plant, filepath.Join(out, "svid_key.pem"), state, badPath, writeDir)
	}
	blocks := cfg("hostile", grant, false) + cfg("hostile-bad", badGrant, true) +
		fmt.Sprintf("plugin \"ok-wasm\" {\n  wasm = %q\n  sha256 = %q\n  config { mode = \"ok\" }\n}\n", okWasm, okSum)
	refs := "  writer \"hostile\" {}\n  writer \"hostile-bad\" {}\n  notifier \"ok-wasm\" {}\n"
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	srv := fakeworkloadapi.New(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	writeFile(t, filepath.Join(dir, "agent.hcl"), "state_dir = \"state\"\n\n"+blocks+nativeConfig(srv.Addr(), out, "flat", port, refs))

	var p *agentProc
	for r := range 3 {
		svid := ca.X509SVID(t, spiffeid.RequireFromPath(td, "/hostile"))
		serial := serialHex(svid.Certificates[0])
		from := 0
		if p != nil {
			from = p.numRecords()
		}
		srv.SetX509([]*x509svid.SVID{svid}, x509bundle.NewSet(ca.X509Bundle()))
		if p == nil {
			p = startAgent(t, dir, "run", "-config", "agent.hcl")
		}
		timeout := 30 * time.Second
		if r == 0 {
			timeout = 5 * time.Minute // the modules compile cold
		}
		i := p.waitLog(t, from, timeout, fmt.Sprintf("rotation %d delivered", r), delivered(serial))
		if rec := p.record(i).raw; r > 0 && !strings.Contains(rec, `"writers":2`) {
			t.Errorf("rotation %d: want 2 writers delivered (files and hostile): %s", r, rec)
		}
		if r == 0 {
			// The WASM writers start in the background: the files may
			// come first, and hostile gets the rotation once it is ready.
			testkit.WaitFor(t, timeout, "the hostile writer's delivery of rotation 0", func() bool {
				_, st := (health{base}).get("/status")
				for _, s := range st.SVIDs {
					for _, o := range s.Outputs {
						if o.Writer == "hostile" && o.Serial == serial {
							return true
						}
					}
				}
				return false
			})
		}
		p.waitLog(t, from, 30*time.Second, fmt.Sprintf("ok-wasm notified of rotation %d", r), notifiedBy("ok-wasm", serial))
		if r == 0 { // later, the same failure is logged once a minute
			bad := p.waitLog(t, from, 30*time.Second, "hostile-bad failing", func(l logRecord) bool {
				return l.Msg == "writing credentials failed; the previous files are intact and the write will be retried" && field(l, "writer") == "hostile-bad"
			})
			if msg := p.record(bad).Error; !strings.Contains(msg, `"/etc/passwd"`) || !strings.Contains(msg, "not under /out") {
				t.Errorf("hostile-bad failed with %q, want the path outside /out named", msg)
			}
		}

		// The report of this rotation: every trick denied.
		b, err := os.ReadFile(filepath.Join(grant, "report.json"))
		if err != nil {
			t.Fatalf("rotation %d: reading the hostile writer's report: %v", r, err)
		}
		var report map[string]string
		if err := json.Unmarshal(b, &report); err != nil {
			t.Fatal(err)
		}
		if len(report) < 13 {
			t.Errorf("rotation %d: the report has %d attempts, want 13: %v", r, len(report), report)
		}
		for name, res := range report {
			if !strings.HasPrefix(res, "denied") {
				t.Errorf("rotation %d: %s: %s", r, name, res)
			}
		}
		// Not ready: hostile-bad's output has never been written.
		if code := getCode(t, base+"/ready"); code != 503 {
			t.Errorf("rotation %d: /ready %d, want 503", r, code)
		}
		if code := getCode(t, base+"/live"); code != 200 {
			t.Errorf("rotation %d: /live %d, want 200", r, code)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Nothing outside the grant changed; the guest left no link.
	if b, _ := os.ReadFile(secret); string(b) != "s3cret" {
		t.Errorf("the secret was changed: %q", b)
	}
	if ents, _ := os.ReadDir(plant); len(ents) != 0 {
		t.Errorf("the hostile writer planted %d files outside its grant", len(ents))
	}
	for _, d := range []string{grant, badGrant} {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				t.Errorf("%s holds %s (%v), which the guest made: only regular files are allowed", d, e.Name(), e.Type())
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "svid_key.pem")); err != nil {
		t.Errorf("the files writer's key, which the guest tried to read, is not there: %v", err)
	}
	// /status names hostile-bad's failure on its output.
	resp, err := noKeepAlive.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var outputs struct {
		SVIDs []struct {
			Outputs []struct {
				Writer    string `json:"writer"`
				Ready     bool   `json:"ready"`
				LastError string `json:"last_error"`
			} `json:"outputs"`
		} `json:"svids"`
	}
	err = json.NewDecoder(resp.Body).Decode(&outputs)
	resp.Body.Close()
	if err != nil || len(outputs.SVIDs) != 1 {
		t.Fatalf("decoding /status: %v (%d svids)", err, len(outputs.SVIDs))
	}
	for _, o := range outputs.SVIDs[0].Outputs {
		bad := o.Writer == "hostile-bad"
		if bad != !o.Ready || bad && !strings.Contains(o.LastError, "not under /out") {
			t.Errorf("/status output %s: ready %v, last error %q", o.Writer, o.Ready, o.LastError)
		}
	}
	st := getStatus(t, base)
	if ps := st.plugin("hostile"); ps.State != "ok" {
		t.Errorf("/status has hostile %q (%s), want ok: its tricks fail inside the guest", ps.State, ps.LastError)
	}
	if !st.Live {
		t.Error("/status: not live")
	}
}
