package filewatch_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/filewatch"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	webID = spiffeid.RequireFromPath(td, "/web")
)

// pair is one issuance as PEM files: chain, key and CA bundle.
type pair struct {
	cert, key, bundle []byte
	serial            *big.Int
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func pemPKCS8(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// newPair mints a fresh X509-SVID for webID from ca.
func newPair(t testing.TB, ca *testca.CA, opts ...testca.Option) pair {
	t.Helper()
	s := ca.X509SVID(t, webID, opts...)
	return pair{
		cert:   pemCerts(s.Certificates...),
		key:    pemPKCS8(t, s.PrivateKey),
		bundle: pemCerts(ca.X509Bundle().X509Authorities()...),
		serial: s.Certificates[0].SerialNumber,
	}
}

// Names used by the tests: the defaults.
const (
	certName   = "tls.crt"
	keyName    = "tls.key"
	bundleName = "ca.crt"
)

// renameOver replaces path atomically: a temporary file in the same
// directory, then rename(2) over path.
func renameOver(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeRenamed writes p into dir, each file replaced atomically by a
// rename, certificate first (a reader can see a new cert with the old key
// in between, as with spiffe-helper and most PKI scripts).
func writeRenamed(t testing.TB, dir string, p pair) {
	t.Helper()
	renameOver(t, filepath.Join(dir, bundleName), p.bundle)
	renameOver(t, filepath.Join(dir, certName), p.cert)
	renameOver(t, filepath.Join(dir, keyName), p.key)
}

// writeRenamedBundleLast is writeRenamed with the bundle written last, so
// that no state between the old files and p is a valid set.
func writeRenamedBundleLast(t testing.TB, dir string, p pair) {
	t.Helper()
	renameOver(t, filepath.Join(dir, certName), p.cert)
	renameOver(t, filepath.Join(dir, keyName), p.key)
	renameOver(t, filepath.Join(dir, bundleName), p.bundle)
}

// writeInPlace rewrites the certificate, then the key, in place
// (truncate and write): the non-atomic way.
func writeInPlace(t testing.TB, dir string, p pair) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{bundleName, p.bundle}, {certName, p.cert}, {keyName, p.key}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// atomicWriter publishes file sets the way Kubernetes' AtomicWriter
// (pkg/volume/util/atomic_writer.go) updates a Secret volume: the files go
// into a new timestamped directory "..<ts>.<random>", a "..data_tmp"
// symlink to it is renamed over "..data", each user-visible name is a
// symlink "<name> -> ..data/<name>" created once, and the old version
// directory is removed.
type atomicWriter struct {
	dir string
	n   int
}

func (w *atomicWriter) write(t testing.TB, p pair) {
	t.Helper()
	w.n++
	ts, err := os.MkdirTemp(w.dir, time.Now().UTC().Format("..2006_01_02_15_04_05.")+fmt.Sprint(w.n))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{certName: p.cert, keyName: p.key, bundleName: p.bundle}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(w.dir, "..data")
	old, _ := os.Readlink(data)
	tmp := filepath.Join(w.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, data); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(w.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(w.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func newIssuer(t testing.TB, dir string, debounce string) *filewatch.Issuer {
	t.Helper()
	cfg := filewatch.DefaultConfig()
	cfg.Dir = dir
	cfg.Debounce = debounce
	iss, err := filewatch.New(cfg, nil)
	if err != nil {
		t.Fatalf("filewatch.New: %v", err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	return iss
}

// checkCreds fails t unless c is a complete, valid set: one SVID whose key
// matches its leaf and whose chain verifies against the bundle.
func checkCreds(c *hostapi.Credentials) error {
	if c == nil || len(c.X509SVIDs) != 1 || c.X509Bundles == nil {
		return fmt.Errorf("incomplete credentials: %+v", c)
	}
	s := c.X509SVIDs[0]
	if s.PrivateKey == nil {
		return fmt.Errorf("no private key")
	}
	pub, ok := s.Certificates[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(s.PrivateKey.Public()) {
		return fmt.Errorf("published a key that does not match the leaf (serial %x)", s.Certificates[0].SerialNumber)
	}
	if _, _, err := x509svid.Verify(s.Certificates, c.X509Bundles); err != nil {
		return fmt.Errorf("published a chain that does not verify: %w", err)
	}
	return nil
}

// recorder runs Watch and records what it publishes and reports. Every
// published set is checked with checkCreds as it arrives.
type recorder struct {
	t       testing.TB
	updates chan *big.Int
	reports chan error
	cancel  context.CancelFunc
	done    chan error

	mu      sync.Mutex
	invalid []error
}

func startWatch(t testing.TB, iss *filewatch.Issuer, req *hostapi.IssueRequest) *recorder {
	t.Helper()
	if req == nil {
		req = &hostapi.IssueRequest{X509: true}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{t: t, updates: make(chan *big.Int, 1<<16), reports: make(chan error, 1<<16), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- iss.Watch(ctx, req, func(c *hostapi.Credentials) {
			if err := checkCreds(c); err != nil {
				r.mu.Lock()
				r.invalid = append(r.invalid, err)
				r.mu.Unlock()
				return
			}
			r.updates <- c.X509SVIDs[0].Certificates[0].SerialNumber
		}, func(err error) {
			if err == nil {
				r.mu.Lock()
				r.invalid = append(r.invalid, fmt.Errorf("report(nil)"))
				r.mu.Unlock()
				return
			}
			r.reports <- err
		})
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Watch, waits for it to return and fails t if anything
// invalid was published. It returns Watch's error.
func (r *recorder) stop() error {
	r.t.Helper()
	r.cancel()
	err := r.wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.invalid {
		r.t.Errorf("invalid publication: %v", e)
	}
	r.invalid = nil
	return err
}

const waitFor = 10 * time.Second

// wait waits for Watch to return and returns its error.
func (r *recorder) wait() error {
	r.t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the next wait
		return err
	case <-time.After(waitFor):
		r.t.Fatal("Watch did not return")
		return nil
	}
}

// next returns the serial of the next published set.
func (r *recorder) next() *big.Int {
	r.t.Helper()
	select {
	case s := <-r.updates:
		return s
	case <-time.After(waitFor):
		r.t.Fatal("timed out waiting for Watch to publish")
		return nil
	}
}

// expectNext fails unless the next published set is want.
func (r *recorder) expectNext(want *big.Int) {
	r.t.Helper()
	if got := r.next(); got.Cmp(want) != 0 {
		r.t.Fatalf("Watch published serial %x, want %x", got, want)
	}
}

// reportContaining waits for a report whose message contains substr and
// returns it.
func (r *recorder) reportContaining(substr string) error {
	r.t.Helper()
	deadline := time.After(waitFor)
	var seen []string
	for {
		select {
		case err := <-r.reports:
			if strings.Contains(err.Error(), substr) {
				return err
			}
			seen = append(seen, err.Error())
		case <-deadline:
			r.t.Fatalf("timed out waiting for a report containing %q; reports so far: %q", substr, seen)
			return nil
		}
	}
}

// noMoreUpdates fails if anything was published that was not consumed.
// Call it after stop, when Watch can publish no more.
func (r *recorder) noMoreUpdates() {
	r.t.Helper()
	select {
	case s := <-r.updates:
		r.t.Errorf("Watch published serial %x once more", s)
	default:
	}
}

// selfCA is a bare CA for certificates testca cannot make (no URI SAN,
// several URI SANs).
type selfCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newSelfCA(t testing.TB) *selfCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "self CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		URIs: []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &selfCA{cert: c, key: key}
}

// leaf signs a leaf with the given URI SANs for key.
func (ca *selfCA) leaf(t testing.TB, key crypto.Signer, uris ...string) pair {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, DNSNames: []string{"web.example.org"},
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return pair{cert: pemCerts(c), key: pemPKCS8(t, key), bundle: pemCerts(ca.cert), serial: c.SerialNumber}
}
