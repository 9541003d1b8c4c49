package examples_test

// End-to-end test of examples/issuer-stepca against a real smallstep
// step-ca (built by scripts/build-stepca.sh): the test makes a root and an
// intermediate, a JWK provisioner and a ca.json, starts step-ca, and runs
// the real agent binary with the plugin (built in the test run) as the
// issuer of an svid block whose files writer and exec notifier must see the
// initial SVID and a rotation.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// stepcaBinDir returns the directory with step-ca: $STEPCA_BIN_DIR, else
// the cache scripts/build-stepca.sh fills. A missing binary fails the test
// with the command that builds it.
func stepcaBinDir(t *testing.T) string {
	t.Helper()
	dir, how := os.Getenv("STEPCA_BIN_DIR"), "STEPCA_BIN_DIR"
	if dir == "" {
		mod, err := os.ReadFile("../tools/stepca/go.mod")
		if err != nil {
			t.Fatal(err)
		}
		var version string
		for _, line := range strings.Split(string(mod), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[len(f)-2] == "github.com/smallstep/certificates" {
				version = f[len(f)-1]
			}
		}
		cache := os.Getenv("SVIDAGENT_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			cache = filepath.Join(home, ".cache", "svidagent")
		}
		dir, how = filepath.Join(cache, "stepca-"+version, "bin"), "the build-stepca.sh cache"
	}
	if _, err := exec.LookPath(filepath.Join(dir, "step-ca")); err != nil {
		t.Fatalf("step-ca not found in %s (from %s): %v; build it with scripts/build-stepca.sh and set STEPCA_BIN_DIR to the directory it prints", dir, how, err)
	}
	return dir
}

// builtDir is the directory stepcaBinaries built into, once it has;
// TestMain removes it.
var builtDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// stepcaBinaries builds the agent and the issuer-stepca plugin once per
// test binary, into a directory TestMain removes.
var stepcaBinaries = sync.OnceValues(func() ([2]string, error) {
	var out [2]string
	dir, err := os.MkdirTemp("", "svidagent-stepca-")
	if err != nil {
		return out, err
	}
	builtDir = dir
	out[0], out[1] = filepath.Join(dir, "svidagent"), filepath.Join(dir, "issuer-stepca")
	for i, pkg := range []string{"../cmd/svidagent", "./issuer-stepca"} {
		cmd := exec.Command("go", "build", "-o", out[i], pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			return out, fmt.Errorf("building %s: %v\n%s", pkg, err, o)
		}
	}
	return out, nil
})

func writeTestFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// stepCA is a running step-ca.
type stepCA struct {
	url      string
	root     *x509.Certificate
	int      *x509.Certificate
	rootFile string
	keyFile  string // the provisioner's private JWK
	cmd      *exec.Cmd
	done     chan struct{}
	log      *bytes.Buffer
	logMu    *sync.Mutex
}

// startStepCA configures and starts a step-ca with a fresh root and
// intermediate and one JWK provisioner named "svidagent".
func startStepCA(t *testing.T, dir string) *stepCA {
	t.Helper()
	bin := filepath.Join(stepcaBinDir(t), "step-ca")
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "svidagent test root"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	intKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	intTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "svidagent test intermediate"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(23 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	intDER, err := x509.CreateCertificate(rand.Reader, intTmpl, root, intKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(intDER)
	intPKCS8, err := x509.MarshalPKCS8PrivateKey(intKey)
	if err != nil {
		t.Fatal(err)
	}

	// The JWK provisioner: ca.json holds the public key, the plugin the
	// private one. step's convention: kid = the key's SHA-256 thumbprint.
	provKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := jose.JSONWebKey{Key: provKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	privJSON, err := jwk.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	pubJSON, err := jwk.Public().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}

	files := map[string][]byte{
		"root.crt": pemCert(rootDER), "intermediate.crt": pemCert(intDER),
		"intermediate.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: intPKCS8}),
		"password":         []byte("unused: the intermediate key is not encrypted\n"),
		"provisioner.json": privJSON,
	}
	for name, b := range files {
		writeTestFile(t, filepath.Join(dir, name), b, 0o600)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	caJSON, _ := json.MarshalIndent(map[string]any{
		"root":     filepath.Join(dir, "root.crt"),
		"crt":      filepath.Join(dir, "intermediate.crt"),
		"key":      filepath.Join(dir, "intermediate.key"),
		"address":  addr,
		"dnsNames": []string{"127.0.0.1"},
		"logger":   map[string]string{"format": "text"},
		"db":       map[string]string{"type": "badgerv2", "dataSource": filepath.Join(dir, "db")},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{
				"type": "JWK", "name": "svidagent", "key": json.RawMessage(pubJSON),
				"claims": map[string]string{
					"minTLSCertDuration": "5s", "defaultTLSCertDuration": "1m", "maxTLSCertDuration": "24h",
				},
			}},
		},
		"tls": map[string]any{
			"cipherSuites":  []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
			"minVersion":    1.2,
			"maxVersion":    1.3,
			"renegotiation": false,
		},
	}, "", "  ")
	writeTestFile(t, filepath.Join(dir, "ca.json"), caJSON, 0o600)

	ca := &stepCA{
		url: "https://" + addr, root: root, int: inter,
		rootFile: filepath.Join(dir, "root.crt"), keyFile: filepath.Join(dir, "provisioner.json"),
		done: make(chan struct{}), log: &bytes.Buffer{}, logMu: &sync.Mutex{},
	}
	ca.cmd = exec.Command(bin, filepath.Join(dir, "ca.json"), "--password-file", filepath.Join(dir, "password"))
	ca.cmd.Stdout, ca.cmd.Stderr = ca.logWriter(), ca.logWriter()
	if err := ca.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = ca.cmd.Wait(); close(ca.done) }()
	t.Cleanup(func() {
		ca.stop()
		if t.Failed() {
			t.Logf("step-ca log:\n%s", ca.output())
		}
	})

	// No event says step-ca is serving: poll /health, with a deadline.
	pool := x509.NewCertPool()
	pool.AddCert(root)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-ca.done:
			t.Fatalf("step-ca exited at start:\n%s", ca.output())
		default:
		}
		resp, err := client.Get(ca.url + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), `"ok"`) {
				return ca
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("step-ca not healthy within 60s (last error %v):\n%s", err, ca.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (ca *stepCA) logWriter() io.Writer { return lockedWriter{ca.logMu, ca.log} }

func (ca *stepCA) output() string {
	ca.logMu.Lock()
	defer ca.logMu.Unlock()
	return ca.log.String()
}

func (ca *stepCA) stop() {
	select {
	case <-ca.done:
		return
	default:
	}
	_ = ca.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ca.done:
	case <-time.After(10 * time.Second):
		_ = ca.cmd.Process.Kill()
		<-ca.done
	}
}

// agentProc is a running svidagent.
type agentProc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

func (p *agentProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *agentProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func runAgent(t *testing.T, bin, dir string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{cmd: exec.Command(bin, args...), out: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("svidagent %s:\n%s", strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *agentProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("svidagent did not exit within %s:\n%s", d, p.output())
		return -1
	}
}

// stepProvisionerOID is step-ca's provisioner extension, which names the
// provisioner that authorised a certificate.
var stepProvisionerOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 37476, 9000, 64, 1}

func TestIssuerStepCAEndToEnd(t *testing.T) {
	dir := t.TempDir()
	bins, err := stepcaBinaries()
	if err != nil {
		t.Fatal(err)
	}
	agentBin, pluginBin := bins[0], bins[1]
	ca := startStepCA(t, dir)

	pb, err := os.ReadFile(pluginBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pb)
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	notified := filepath.Join(dir, "notified.log")
	script := filepath.Join(dir, "notify.sh")
	writeTestFile(t, script, []byte("#!/bin/sh\necho rotated >> "+notified+"\n"), 0o755)
	writeTestFile(t, filepath.Join(dir, "agent.hcl"), []byte(fmt.Sprintf(`
state_dir = "state"

plugin "stepca" {
  command = %q
  sha256  = %q
  config {
    ca_url               = %q
    root                 = %q
    provisioner          = "svidagent"
    provisioner_key_file = %q
  }
}

issuer "ca" {
  type = "stepca"
}

svid "web" {
  spiffe_id = %q
  ttl       = "20s"
  writer "files" {
    dir = "out"
  }
  notifier "exec" {
    cmd = %q
  }
}
`, pluginBin, hex.EncodeToString(sum[:]), ca.url, ca.rootFile, ca.keyFile, id, script)), 0o600)

	// validate opens the plugin (its sha256 checked) and runs its Validate.
	if code := runAgent(t, agentBin, dir, "validate", "-config", "agent.hcl").wait(t, 60*time.Second); code != 0 {
		t.Fatalf("svidagent validate exit code %d", code)
	}

	p := runAgent(t, agentBin, dir, "run", "-config", "agent.hcl", "-log-level", "debug")
	out := filepath.Join(dir, "out")
	load := func() (*x509svid.SVID, error) {
		return x509svid.Load(filepath.Join(out, "svid.pem"), filepath.Join(out, "svid_key.pem"))
	}
	lines := func() int {
		b, _ := os.ReadFile(notified)
		return strings.Count(string(b), "rotated\n")
	}
	testkit.WaitFor(t, 60*time.Second, "the first SVID and its notification", func() bool {
		_, err := load()
		return err == nil && lines() >= 1
	})
	first, err := load()
	if err != nil {
		t.Fatal(err)
	}
	leaf := first.Certificates[0]
	if first.ID != id {
		t.Errorf("SVID for %s, want %s", first.ID, id)
	}
	if len(first.Certificates) != 2 || !first.Certificates[1].Equal(ca.int) {
		t.Errorf("chain of %d certificates, want the leaf and step-ca's intermediate", len(first.Certificates))
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 21*time.Second+time.Minute || life < 20*time.Second {
		t.Errorf("lifetime %s, want the svid block's 20s (step-ca may backdate NotBefore)", life)
	}
	var prov string
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(stepProvisionerOID) {
			var v struct {
				Type         int
				Name         []byte
				CredentialID []byte
			}
			if _, err := asn1.Unmarshal(ext.Value, &v); err == nil {
				prov = string(v.Name)
			}
		}
	}
	if prov != "svidagent" {
		t.Errorf("step-ca's provisioner extension names %q, want the JWK provisioner svidagent", prov)
	}
	bundle, err := x509bundle.Load(id.TrustDomain(), filepath.Join(out, "svid_bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if auth := bundle.X509Authorities(); len(auth) != 1 || !auth[0].Equal(ca.root) {
		t.Errorf("bundle has %d authorities, want step-ca's root alone", len(auth))
	}
	if _, _, err := x509svid.Verify(first.Certificates, bundle); err != nil {
		t.Errorf("the written SVID does not verify against the written bundle: %v", err)
	}

	// The agent renews at half the lifetime: a new SVID from step-ca and
	// a second notification.
	testkit.WaitFor(t, 60*time.Second, "a rotation and its notification", func() bool {
		s, err := load()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 && lines() >= 2
	})
	second, _ := load()
	if _, _, err := x509svid.Verify(second.Certificates, bundle); err != nil || second.ID != id {
		t.Errorf("rotated SVID %s: %v", second.ID, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("svidagent exit code %d after SIGTERM, want 0", code)
	}

	// With step-ca down, a one-shot fetch fails and names the CA.
	ca.stop()
	f := runAgent(t, agentBin, dir, "fetch", "-config", "agent.hcl")
	if code := f.wait(t, 90*time.Second); code == 0 {
		t.Errorf("fetch with step-ca down succeeded:\n%s", f.output())
	} else if !strings.Contains(f.output(), "step-ca at "+ca.url) {
		t.Errorf("fetch error does not name step-ca:\n%s", f.output())
	}
	if s, err := load(); err != nil || s.Certificates[0].SerialNumber.Cmp(second.Certificates[0].SerialNumber) != 0 {
		t.Errorf("the failed fetch changed the delivered files: %v", err)
	}
}
