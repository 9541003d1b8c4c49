package main_test

// Integration tests: the svidagent binary against a real SPIRE server and
// agent (internal/spiretest), with a real consumer process receiving real
// signals.

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/spiretest"
)

var (
	agentBin    string // the svidagent binary under test
	recorderBin string // testdata/recorder
	// testBinDir holds the binaries built for the tests; TestMain removes
	// it after the run.
	testBinDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "svidagent-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	agentBin = filepath.Join(dir, "svidagent")
	recorderBin = filepath.Join(dir, "recorder")
	for _, b := range [][]string{{agentBin, "."}, {recorderBin, "./testdata/recorder"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b[1], err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agentProc is a running svidagent.
type agentProc struct {
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
}

func startAgent(t *testing.T, dir string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Dir = dir
	out := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("svidagent output:\n%s", out.String())
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit code.
func (p *agentProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("svidagent did not exit within 30s of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// checkX509Files checks that the key matches the cert and that the chain
// verifies against the bundle, and returns the leaf.
func checkX509Files(t *testing.T, dir string, wantID string) *x509.Certificate {
	t.Helper()
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "svid_key.pem"))
	if err != nil {
		t.Fatalf("loading the SVID and key (a mismatched pair fails here): %v", err)
	}
	if svid.ID.String() != wantID {
		t.Fatalf("SVID is %s, want %s", svid.ID, wantID)
	}
	td := spiffeid.RequireTrustDomainFromString(svid.ID.TrustDomain().Name())
	bundle, err := x509bundle.Load(td, filepath.Join(dir, "svid_bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		t.Fatalf("the written chain does not verify against the written bundle: %v", err)
	}
	return svid.Certificates[0]
}

func checkJWTFiles(t *testing.T, dir, token, bundleFile, wantID string, wantAud []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, token))
	if err != nil {
		t.Fatal(err)
	}
	bundles := readJWTBundles(t, filepath.Join(dir, bundleFile))
	svid, err := jwtsvid.ParseAndValidate(strings.TrimSpace(string(raw)), bundles, wantAud[:1])
	if err != nil {
		t.Fatalf("the JWT-SVID does not validate against the written JWT bundle: %v", err)
	}
	if svid.ID.String() != wantID {
		t.Errorf("JWT subject %s, want %s", svid.ID, wantID)
	}
	for _, a := range wantAud {
		if !slices.Contains(svid.Audience, a) {
			t.Errorf("JWT audience %v lacks %q", svid.Audience, a)
		}
	}
}

// readJWTBundles reads spiffe-helper's JWT bundle file:
// {"<trust domain>": "<base64 JWKS>"}.
func readJWTBundles(t *testing.T, path string) *jwtbundle.Set {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("JWT bundle file %s: %v", path, err)
	}
	set := jwtbundle.NewSet()
	for td, b64 := range m {
		jwks, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("JWT bundle for %s: %v", td, err)
		}
		b, err := jwtbundle.Parse(spiffeid.RequireTrustDomainFromString(td), jwks)
		if err != nil {
			t.Fatalf("JWT bundle for %s: %v", td, err)
		}
		set.Add(b)
	}
	return set
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOneShotHelperConf(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{})
	id := "spiffe://" + spire.TrustDomain() + "/oneshot"
	spire.CreateEntry(t, id, spiretest.UIDSelector())

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "helper.conf"), fmt.Sprintf(`
agent_address = %q
cert_dir = "certs"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_svids = [{jwt_audience="your-audience",jwt_extra_audiences=["your-extra-audience-1", "your-extra-audience-2"], jwt_svid_file_name="jwt_svid.token"}]
jwt_bundle_file_name = "bundle.json"
cert_file_mode = 0444
key_file_mode = 0400
jwt_bundle_file_mode = 0444
jwt_svid_file_mode = 0440
`, spire.SocketPath()))

	start := time.Now()
	p := startAgent(t, dir) // no -config: helper.conf in the working directory
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("one-shot fetch did not exit")
	}
	wall := time.Since(start)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0; output:\n%s", code, p.out)
	}
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("one-shot fetch against real SPIRE: wall %s, max RSS %d KiB", wall.Round(time.Millisecond), ru.Maxrss)

	certs := filepath.Join(dir, "certs")
	checkX509Files(t, certs, id)
	checkJWTFiles(t, certs, "jwt_svid.token", "bundle.json", id, []string{"your-audience", "your-extra-audience-1", "your-extra-audience-2"})
	for name, want := range map[string]os.FileMode{
		"svid.pem": 0o444, "svid_bundle.pem": 0o444, "svid_key.pem": 0o400,
		"bundle.json": 0o444, "jwt_svid.token": 0o440,
	} {
		if got := mode(t, filepath.Join(certs, name)); got != want {
			t.Errorf("%s mode %#o, want %#o", name, got, want)
		}
	}
}

// TestDaemonREADMEExample runs the configuration example of spiffe-helper's
// README unchanged but for paths and cmd, which points at the recorder.
func TestDaemonREADMEExample(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{X509TTL: 20 * time.Second, JWTTTL: 20 * time.Second})
	id := "spiffe://example.org/Database"
	spire.CreateEntry(t, id, spiretest.UIDSelector())

	dir := t.TempDir()
	rec := filepath.Join(dir, "recorder.log")
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "helper.conf"), fmt.Sprintf(`
agent_address = %q
cmd = %q
cmd_args = "-spawn %s server --listen localhost:8002 --target localhost:8001 --keystore certs/svid_key.pem --cacert certs/svid_bundle.pem --allow-uri-san spiffe://example.org/Database"
cert_dir = "certs"
renew_signal = "SIGUSR1"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_svids = [{jwt_audience="your-audience",jwt_extra_audiences=["your-extra-audience-1", "your-extra-audience-2"], jwt_svid_file_name="jwt_svid.token"}]
jwt_bundle_file_name = "bundle.json"
cert_file_mode = 0444
key_file_mode = 0444
jwt_bundle_file_mode = 0444
jwt_svid_file_mode = 0444
`, spire.SocketPath(), recorderBin, rec))

	p := startAgent(t, dir, "-config", "helper.conf")
	certs := filepath.Join(dir, "certs")

	// The command starts only after the first write, with spiffe-helper's
	// argument splitting.
	testkit.WaitFor(t, 30*time.Second, "the command to start", func() bool { return strings.HasPrefix(lines(rec)[0], "start ") })
	first := checkX509Files(t, certs, id)
	startLine := strings.Fields(lines(rec)[0])
	childPID, _ := strconv.Atoi(startLine[1])
	if got := strings.Join(startLine[2:], " "); !strings.HasPrefix(got, "server|--listen|localhost:8002|") {
		t.Errorf("command args = %q", got)
	}
	checkJWTFiles(t, certs, "jwt_svid.token", "bundle.json", id, []string{"your-audience", "your-extra-audience-1", "your-extra-audience-2"})
	if got := mode(t, filepath.Join(certs, "svid_key.pem")); got != 0o444 {
		t.Errorf("key mode %#o, want 0444 as configured", got)
	}

	// A real rotation: a new certificate on disk, then the signal.
	testkit.WaitFor(t, 60*time.Second, "an X.509 rotation", func() bool {
		svid, err := x509svid.Load(filepath.Join(certs, "svid.pem"), filepath.Join(certs, "svid_key.pem"))
		return err == nil && svid.Certificates[0].SerialNumber.Cmp(first.SerialNumber) != 0
	})
	checkX509Files(t, certs, id)
	testkit.WaitFor(t, 30*time.Second, "the renew signal", func() bool { return slices.Contains(lines(rec), "signal SIGUSR1") })

	// The grandchild is in the command's process group.
	var grandchild int
	for _, l := range lines(rec) {
		if pid, ok := strings.CutPrefix(l, "child "); ok {
			grandchild, _ = strconv.Atoi(pid)
		}
	}
	if grandchild == 0 {
		t.Fatalf("recorder did not spawn a grandchild: %q", lines(rec))
	}

	// SIGTERM: exit 0, the command and its group stopped and reaped.
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !slices.Contains(lines(rec), "term") {
		t.Errorf("the command was not sent SIGTERM: %q", lines(rec))
	}
	for _, pid := range []int{childPID, grandchild} {
		if alive(pid) {
			t.Errorf("process %d survived svidagent's shutdown", pid)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReadinessFollowsSPIREAgent: readiness turns 503 when the SPIRE agent
// is gone and the SVID on disk expires, and 200 again when it returns.
func TestReadinessFollowsSPIREAgent(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{X509TTL: 15 * time.Second})
	id := "spiffe://" + spire.TrustDomain() + "/ready"
	spire.CreateEntry(t, id, spiretest.UIDSelector())

	dir := t.TempDir()
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`
issuer "spire" {
  type    = "workloadapi"
  address = "unix://%s"
}

svid "ready" {
  writer "files" {
    dir = "out"
  }
}

health {
  enabled = true
  address = "127.0.0.1:%d"
}
`, spire.SocketPath(), port))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	ready := fmt.Sprintf("http://127.0.0.1:%d/ready", port)
	live := fmt.Sprintf("http://127.0.0.1:%d/live", port)

	testkit.WaitFor(t, 30*time.Second, "readiness 200", func() bool { return httpStatus(ready) == http.StatusOK })
	checkX509Files(t, filepath.Join(dir, "out"), id)

	spire.StopAgent(t)
	testkit.WaitFor(t, 60*time.Second, "readiness 503 once the SVID expired", func() bool { return httpStatus(ready) == http.StatusServiceUnavailable })
	if got := httpStatus(live); got != http.StatusOK {
		t.Errorf("liveness %d while the SPIRE agent is down; the agent itself is healthy", got)
	}
	// The expired files are kept, not removed or truncated.
	if _, err := os.Stat(filepath.Join(dir, "out", "svid.pem")); err != nil {
		t.Errorf("svid.pem after expiry: %v", err)
	}

	spire.StartAgent(t)
	testkit.WaitFor(t, 60*time.Second, "readiness 200 after the SPIRE agent returned", func() bool { return httpStatus(ready) == http.StatusOK })
	checkX509Files(t, filepath.Join(dir, "out"), id)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestConfigErrorExit2(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.hcl"), `
issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
    key_file_mode = 01777
  }
}
`)
	p := startAgent(t, dir, "validate", "-config", "bad.hcl")
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if !strings.Contains(p.out.String(), "bad.hcl:7:") {
		t.Errorf("error does not name bad.hcl:7:col:\n%s", p.out)
	}
}
