// Package faults_test is svidagent's fault-injection suite (issue 6 §1).
//
// Every test drives the real svidagent binary, built once in TestMain with
// CGO_ENABLED=0, as a process: against a real SPIRE server and agent
// (internal/spiretest) or, where thousands of rotations are needed, against
// the fake Workload API (internal/fakeworkloadapi), which is a real gRPC
// server on a unix socket. What the tests observe is what an operator
// observes: the files on disk, the health endpoint's status code and JSON
// body, the agent's (JSON) log, its exit code, and /proc.
//
// Run it with `make test-faults`, or:
//
//	SPIRE_BIN_DIR="$(scripts/build-spire.sh | tail -n 1)" go test -count=1 -v ./faults/
//
// The measured figures are in docs/FAULTS.md.
package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
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

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var (
	agentBin    string // the svidagent binary under test
	recorderBin string // cmd/svidagent/testdata/recorder: a consumer that spawns a grandchild
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// make test-unit: the suite needs SPIRE and minutes.
		fmt.Println("faults: not run with -short; run make test-faults")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "svidagent-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "svidagent")
	recorderBin = filepath.Join(dir, "recorder")
	for _, b := range [][]string{{agentBin, "../cmd/svidagent"}, {recorderBin, "../cmd/svidagent/testdata/recorder"}} {
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

// logRecord is one line of the agent's JSON log.
type logRecord struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Serial string `json:"serial"`
	Error  string `json:"error"`
	raw    string
}

// agentProc is a running svidagent. Its stderr is parsed as it arrives;
// tests wait on log records as events.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process was waited for

	mu      sync.Mutex
	records []logRecord
	raw     bytes.Buffer
	changed chan struct{} // closed and replaced on every new record
}

// startAgent runs svidagent with args in dir, logging JSON at info level.
func startAgent(t *testing.T, dir string, args ...string) *agentProc {
	t.Helper()
	args = append(args, "-log-format", "json")
	cmd := exec.Command(agentBin, args...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.add(sc.Text())
		}
	}()
	go func() {
		<-readDone // Wait closes the pipe: read everything first
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			out := p.log()
			if len(out) > 64<<10 {
				out = out[len(out)-64<<10:]
			}
			t.Logf("svidagent log (tail):\n%s", out)
		}
	})
	return p
}

func (p *agentProc) add(line string) {
	var r logRecord
	_ = json.Unmarshal([]byte(line), &r)
	r.raw = line
	p.mu.Lock()
	p.records = append(p.records, r)
	p.raw.WriteString(line)
	p.raw.WriteByte('\n')
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *agentProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// waitLog blocks until a record from index from on satisfies match, and
// returns its index. It fails t after timeout or if the process exits.
func (p *agentProc) waitLog(t testing.TB, from int, timeout time.Duration, what string, match func(logRecord) bool) int {
	t.Helper()
	i, err := p.waitLogErr(from, timeout, match)
	if err != nil {
		t.Fatalf("waiting for %s in the agent's log: %v", what, err)
	}
	return i
}

func (p *agentProc) waitLogErr(from int, timeout time.Duration, match func(logRecord) bool) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for ; from < len(p.records); from++ {
			if match(p.records[from]) {
				p.mu.Unlock()
				return from, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.done:
			return 0, errors.New("svidagent exited")
		case <-timer.C:
			return 0, fmt.Errorf("timed out after %s", timeout)
		}
	}
}

// numRecords returns how many log records arrived so far.
func (p *agentProc) numRecords() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.records)
}

// record returns the i-th log record.
func (p *agentProc) record(i int) logRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records[i]
}

// delivered matches the record of a delivery of the X509-SVID with serial.
func delivered(serial string) func(logRecord) bool {
	return func(r logRecord) bool { return r.Msg == "credentials delivered" && r.Serial == serial }
}

// signalAndWait sends sig and waits for the process to exit; it returns
// the exit code.
func (p *agentProc) signalAndWait(t testing.TB, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("svidagent did not exit within %s of %v", timeout, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// status is the part of the health JSON body the suite reads.
type status struct {
	Live     bool     `json:"live"`
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems"`
	SVIDs    []struct {
		Name        string `json:"name"`
		IssuerError string `json:"issuer_error"`
		Error       string `json:"error"`
		Outputs     []struct {
			Writer    string     `json:"writer"`
			Ready     bool       `json:"ready"`
			Serial    string     `json:"serial"`
			NotAfter  *time.Time `json:"not_after"`
			LastError string     `json:"last_error"`
		} `json:"outputs"`
	} `json:"svids"`
}

// health is the agent's health endpoint.
type health struct{ base string }

// get returns the status code and body of path; code 0 when the request
// failed.
func (h health) get(path string) (int, status) {
	var st status
	resp, err := http.Get(h.base + path)
	if err != nil {
		return 0, st
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, st
}

func (h health) ready() (int, status) { return h.get("/ready") }
func (h health) live() (int, status)  { return h.get("/live") }

// nativeConfig is an agent.hcl with one workloadapi issuer at addr, one svid
// block "faults" with a files writer into out (with layout), extra HCL in
// the svid block, and health on port.
func nativeConfig(addr, out, layout string, port int, extra string) string {
	return fmt.Sprintf(`
issuer "wapi" {
  type    = "workloadapi"
  address = %q
}

svid "faults" {
  writer "files" {
    dir    = %q
    layout = %q
  }
%s
}

health {
  enabled = true
  address = "127.0.0.1:%d"
}
`, addr, out, layout, extra, port)
}

// pair is one read of the certificate and key files.
type pair struct {
	certPEM, keyPEM []byte
}

// check parses both files and reports whether the key belongs to the
// leaf certificate. A parse error is returned as err.
func (p pair) check() (leaf *x509.Certificate, match bool, err error) {
	certs, err := parseCerts(p.certPEM)
	if err != nil {
		return nil, false, fmt.Errorf("parsing the certificate file: %w", err)
	}
	key, err := parseKey(p.keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("parsing the key file: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return certs[0], ok && pub.Equal(certs[0].PublicKey), nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 || len(bytes.TrimSpace(b)) != 0 {
		return nil, errors.New("no certificate, or trailing garbage")
	}
	return certs, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not exactly one PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T is not a signer", k)
	}
	return s, nil
}

// checkX509Dir checks that dir holds a complete, consistent set: the key
// matches the certificate and the chain verifies against the bundle. It
// returns the leaf.
func checkX509Dir(t testing.TB, dir string) *x509.Certificate {
	t.Helper()
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "svid_key.pem"))
	if err != nil {
		t.Fatalf("loading the SVID and key from %s (a mismatched pair fails here): %v", dir, err)
	}
	td := spiffeid.RequireTrustDomainFromString(svid.ID.TrustDomain().Name())
	bundle, err := x509bundle.Load(td, filepath.Join(dir, "svid_bundle.pem"))
	if err != nil {
		t.Fatalf("loading the bundle from %s: %v", dir, err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		t.Fatalf("the chain in %s does not verify against its bundle: %v", dir, err)
	}
	return svid.Certificates[0]
}

// serialHex is how the agent logs and serves serials.
func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// fileWatcher checks the output files continuously, from its own
// goroutine, until stop: every file must exist, be non-empty and parse, and
// the key must match the certificate. The cert and key can be from
// different rotations in the flat layout, so a mismatch is counted apart.
type fileWatcher struct {
	dir    string
	cancel context.CancelFunc
	done   chan struct{}

	checks     int
	violations []string // missing, empty, unparsable: never allowed
	mismatches int
}

func watchFiles(dir string) *fileWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &fileWatcher{dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			w.checkOnce()
			// A reader that hammers would starve the agent on 2 cores.
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *fileWatcher) checkOnce() {
	w.checks++
	var files [3][]byte
	for i, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem"} {
		b, err := os.ReadFile(filepath.Join(w.dir, name))
		switch {
		case err != nil:
			w.violate("%s: %v", name, err)
			return
		case len(b) == 0:
			w.violate("%s: empty", name)
			return
		}
		files[i] = b
	}
	if _, err := parseCerts(files[2]); err != nil {
		w.violate("svid_bundle.pem: %v", err)
	}
	_, match, err := pair{files[0], files[1]}.check()
	if err != nil {
		w.violate("%v", err)
		return
	}
	if !match {
		w.mismatches++
	}
}

func (w *fileWatcher) violate(format string, args ...any) {
	if len(w.violations) < 20 {
		w.violations = append(w.violations, time.Now().Format(time.StampMicro)+" "+fmt.Sprintf(format, args...))
		return
	}
	w.violations = append(w.violations, "")
}

// stop ends the watcher and returns once its goroutine has.
func (w *fileWatcher) stop() {
	w.cancel()
	<-w.done
}

// snapshot returns the content of every regular file and symlink in dir,
// by name.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		if de.Type()&os.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			m[de.Name()] = "-> " + l
			continue
		}
		if de.IsDir() {
			m[de.Name()] = "<dir>"
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[de.Name()] = string(b)
	}
	return m
}

// diffSnapshots describes how b differs from a; empty when they are equal.
func diffSnapshots(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		w, ok := b[k]
		switch {
		case !ok:
			d = append(d, k+" removed")
		case v != w:
			d = append(d, k+" changed")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k+" appeared")
		}
	}
	return strings.Join(d, ", ")
}
