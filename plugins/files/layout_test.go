package files_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/files"
)

// versions returns the version directories in dir.
func versions(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.IsDir() && strings.HasPrefix(de.Name(), "..") {
			out = append(out, de.Name())
		}
	}
	return out
}

func TestDataLayout(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "created", "on", "demand")
	cfg.Layout = files.LayoutData
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"svid_bundle.pem", "svid.pem", "svid_key.pem", "jwt_svid.token"}

	var prev string
	for round := range 3 {
		set := p.set(t)
		res, err := w.Write(context.Background(), set)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, n := range names {
			want = append(want, filepath.Join(cfg.Dir, n))
		}
		if !slices.Equal(res.Paths, want) {
			t.Errorf("Paths = %q, want %q", res.Paths, want)
		}
		cur, err := os.Readlink(filepath.Join(cfg.Dir, files.DataDirName))
		if err != nil {
			t.Fatalf("round %d: ..data is not a symlink: %v", round, err)
		}
		if cur == prev {
			t.Errorf("round %d: ..data still points at %s", round, cur)
		}
		if v := versions(t, cfg.Dir); !slices.Equal(v, []string{cur}) {
			t.Errorf("round %d: version directories %v, want only %s", round, v, cur)
		}
		if fi, err := os.Stat(filepath.Join(cfg.Dir, cur)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("version directory mode: %v, %v", fi, err)
		}
		for _, n := range names {
			target, err := os.Readlink(filepath.Join(cfg.Dir, n))
			if err != nil || target != files.DataDirName+"/"+n {
				t.Errorf("round %d: %s -> %q (%v), want ..data/%s", round, n, target, err, n)
			}
		}
		got, err := x509svid.Load(filepath.Join(cfg.Dir, "svid.pem"), filepath.Join(cfg.Dir, "svid_key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Certificates[0].Equal(set.X509SVIDs[0].Certificates[0]) {
			t.Errorf("round %d: svid.pem holds an old certificate", round)
		}
		prev = cur
	}

	// A JWT file dropped from the set loses its link.
	set := p.set(t)
	set.JWTSVIDs = nil
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(cfg.Dir, "jwt_svid.token")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale jwt_svid.token link: %v", err)
	}
}

// TestDataLayoutMigratesFlat switches a directory from the flat layout to
// the data layout: the regular files become links.
func TestDataLayoutMigratesFlat(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	flat, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flat.Write(context.Background(), p.set(t)); err != nil {
		t.Fatal(err)
	}
	dcfg := *cfg
	dcfg.Layout = files.LayoutData
	data, err := files.New(&dcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := p.set(t)
	if _, err := data.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem", "jwt_svid.token"} {
		if target, err := os.Readlink(filepath.Join(cfg.Dir, n)); err != nil || target != "..data/"+n {
			t.Errorf("%s -> %q, %v", n, target, err)
		}
	}
	if got := readFile(t, filepath.Join(cfg.Dir, "svid.pem")); !bytes.Equal(got, pemCerts(set.X509SVIDs[0].Certificates...)) {
		t.Error("svid.pem does not hold the new chain")
	}
	if tr := transients(t, cfg.Dir); len(tr) > 0 {
		t.Errorf("transient files left: %v", tr)
	}
}

func TestSPIFFEFS(t *testing.T) {
	for _, rev := range files.SPIFFEFSRevisions {
		t.Run(rev.Layout, func(t *testing.T) { testSPIFFEFS(t, rev) })
	}
}

func testSPIFFEFS(t *testing.T, rev files.SPIFFEFSRevision) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = rev.Layout
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := p.set(t)
	svid := set.X509SVIDs[0]
	// An issuer that includes the root in the chain: the standard forbids
	// writing it.
	svid.Certificates = append(slices.Clone(svid.Certificates), p.root.Cert())
	res, err := w.Write(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(cfg.Dir, "example.org"+rev.TrustBundleSuffix),
		filepath.Join(cfg.Dir, "other.org"+rev.TrustBundleSuffix),
		filepath.Join(cfg.Dir, rev.CredentialBundle),
	}
	if rev.Indexed {
		want = append(want, filepath.Join(cfg.Dir, "hints.json"))
	}
	want = append(want, filepath.Join(cfg.Dir, "jwt_svid.token"))
	if !slices.Equal(res.Paths, want) {
		t.Errorf("Paths = %q, want %q", res.Paths, want)
	}

	// The credential bundle: PRIVATE KEY, leaf, intermediate; no root, no
	// headers, nothing between blocks.
	cred := readFile(t, filepath.Join(cfg.Dir, rev.CredentialBundle))
	var types []string
	var reencoded []byte
	for rest := cred; len(rest) > 0; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			t.Fatalf("inter-block data or garbage: %q", rest)
		}
		if len(b.Headers) > 0 {
			t.Errorf("%s block has headers %v", b.Type, b.Headers)
		}
		types = append(types, b.Type)
		reencoded = append(reencoded, pem.EncodeToMemory(b)...)
	}
	if !bytes.Equal(reencoded, cred) {
		t.Error("the credential bundle has data outside its PEM blocks")
	}
	if !slices.Equal(types, []string{"PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"}) {
		t.Errorf("block types %v, want PRIVATE KEY, leaf, intermediate", types)
	}
	got, err := x509svid.Parse(cred, cred)
	if err != nil {
		t.Fatalf("parsing the credential bundle: %v", err)
	}
	if !got.Certificates[0].Equal(svid.Certificates[0]) || !got.Certificates[1].Equal(svid.Certificates[1]) {
		t.Error("the chain is not the SVID's, leaf first")
	}
	if want := append(pemKey(t, svid.PrivateKey), pemCerts(svid.Certificates[:2]...)...); !bytes.Equal(cred, want) {
		t.Error("credential bundle bytes differ from key + leaf + intermediate")
	}
	for _, tc := range []struct {
		td   spiffeid.TrustDomain
		want []byte
	}{{tdMain, pemCerts(p.root.Cert())}, {tdFed, pemCerts(p.fed.Cert())}} {
		if got := readFile(t, filepath.Join(cfg.Dir, tc.td.Name()+rev.TrustBundleSuffix)); !bytes.Equal(got, tc.want) {
			t.Errorf("%s trust bundle = %q", tc.td, got)
		}
	}

	// De-federation: other.org leaves the set, its file goes; a file that
	// is not a trust bundle stays.
	other := filepath.Join(cfg.Dir, "notes.txt")
	if err := os.WriteFile(other, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	set = p.set(t)
	set.X509Bundles = x509bundle.NewSet(p.root.X509Bundle())
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "other.org"+rev.TrustBundleSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("de-federated trust bundle still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "example.org"+rev.TrustBundleSuffix)); err != nil {
		t.Errorf("own trust bundle gone: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
	if tr := transients(t, cfg.Dir); len(tr) > 0 {
		t.Errorf("transient files left: %v", tr)
	}
}

// TestSPIFFEFSNoEmptyTrustBundle: a trust domain whose bundle has no
// certificate (or only expired ones under omit_expired) gets no file, and
// a file written before it emptied is removed; the draft requires "one or
// more PEM CERTIFICATE blocks".
func TestSPIFFEFSNoEmptyTrustBundle(t *testing.T) {
	for _, rev := range files.SPIFFEFSRevisions {
		t.Run(rev.Layout, func(t *testing.T) {
			p := newPKI(t)
			cfg := files.DefaultConfig()
			cfg.Dir = t.TempDir()
			cfg.Layout = rev.Layout
			cfg.OmitExpired = true
			w, err := files.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			fedFile := filepath.Join(cfg.Dir, "other.org"+rev.TrustBundleSuffix)
			if _, err := w.Write(context.Background(), p.set(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(fedFile); err != nil {
				t.Fatalf("federated trust bundle not written: %v", err)
			}
			for name, fed := range map[string]*x509bundle.Bundle{
				"empty":   x509bundle.New(tdFed),
				"expired": x509bundle.FromX509Authorities(tdFed, []*x509.Certificate{expiredCert(t)}),
			} {
				set := p.set(t)
				set.X509Bundles = x509bundle.NewSet(p.root.X509Bundle(), fed)
				res, err := w.Write(context.Background(), set)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if slices.Contains(res.Paths, fedFile) {
					t.Errorf("%s: Paths lists %s", name, fedFile)
				}
				if _, err := os.Stat(fedFile); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: trust bundle without certificates is on disk: %v", name, err)
				}
			}
		})
	}
}

// expiredCert returns a self-signed CA certificate that expired an hour ago.
func expiredCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-2 * time.Hour),
		NotAfter:              time.Now().Add(-time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSPIFFEFSMultipleSVIDs: the newest layout puts the i-th further SVID
// in the same folder as "<i>.credential-bundle.private-key.x509.pem" and
// indexes them in hints.json, as spiffe/spiffefs does; an SVID that leaves
// the set loses its file and its hint.
func TestSPIFFEFSMultipleSVIDs(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = files.LayoutSPIFFEFS
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := p.set(t)
	set.X509SVIDs[0].Hint = "internal"
	second := spiffeid.RequireFromPath(tdFed, "/b")
	set.X509SVIDs = append(set.X509SVIDs, p.fed.X509SVID(t, second))
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	names := []string{"credential-bundle.private-key.x509.pem", "1.credential-bundle.private-key.x509.pem"}
	for i, id := range []spiffeid.ID{webID, second} {
		if files.CredentialBundleFileName(i) != names[i] {
			t.Errorf("CredentialBundleFileName(%d) = %q, want %q", i, files.CredentialBundleFileName(i), names[i])
		}
		cred := readFile(t, filepath.Join(cfg.Dir, names[i]))
		got, err := x509svid.Parse(cred, cred)
		if err != nil || got.ID != id {
			t.Fatalf("%s: %v, %v", names[i], got, err)
		}
		b, err := x509bundle.Load(id.TrustDomain(), filepath.Join(cfg.Dir, id.TrustDomain().Name()+".spiffe-trust-bundle.x509.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := x509svid.Verify(got.Certificates, b); err != nil {
			t.Errorf("%s: SVID does not verify against its trust bundle: %v", names[i], err)
		}
	}
	// hints.json, byte for byte as spiffe/spiffefs' json.MarshalIndent
	// writes it; the fingerprint is `openssl x509 -fingerprint -sha256`'s.
	want := "{\n  \"hints\": [\n" +
		"    {\n      \"hint\": \"internal\",\n      \"id\": 0,\n      \"fingerprint\": \"" + opensslFingerprint(set.X509SVIDs[0].Certificates[0].Raw) + "\"\n    },\n" +
		"    {\n      \"hint\": \"\",\n      \"id\": 1,\n      \"fingerprint\": \"" + opensslFingerprint(set.X509SVIDs[1].Certificates[0].Raw) + "\"\n    }\n" +
		"  ]\n}\n"
	if got := string(readFile(t, filepath.Join(cfg.Dir, "hints.json"))); got != want {
		t.Errorf("hints.json =\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "svid_1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the newest layout made a svid_1 folder: %v", err)
	}
	for name, mode := range map[string]fs.FileMode{names[1]: 0o600, "hints.json": 0o644} {
		if fi, err := os.Stat(filepath.Join(cfg.Dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, mode)
		}
	}

	// The second SVID leaves: its file goes, hints.json lists one SVID.
	set = p.set(t)
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, names[1])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("credential bundle of a departed SVID still there: %v", err)
	}
	want = "{\n  \"hints\": [\n    {\n      \"hint\": \"\",\n      \"id\": 0,\n      \"fingerprint\": \"" + opensslFingerprint(set.X509SVIDs[0].Certificates[0].Raw) + "\"\n    }\n  ]\n}\n"
	if got := string(readFile(t, filepath.Join(cfg.Dir, "hints.json"))); got != want {
		t.Errorf("hints.json after the second SVID left =\n%s\nwant\n%s", got, want)
	}
}

// opensslFingerprint formats a SHA-256 as openssl prints it, written
// independently of the writer's Fingerprint.
func opensslFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	b.WriteString("sha256:")
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// TestSPIFFEFSPinnedMultipleSVIDs: the pinned revisions give each further
// SVID its own credential folder dir/svid_<i>, every folder complete.
func TestSPIFFEFSPinnedMultipleSVIDs(t *testing.T) {
	for _, rev := range files.SPIFFEFSRevisions[1:] {
		t.Run(rev.Layout, func(t *testing.T) {
			p := newPKI(t)
			cfg := files.DefaultConfig()
			cfg.Dir = t.TempDir()
			cfg.Layout = rev.Layout
			w, err := files.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			set := p.set(t)
			second := spiffeid.RequireFromPath(tdFed, "/b")
			set.X509SVIDs = append(set.X509SVIDs, p.fed.X509SVID(t, second))
			if _, err := w.Write(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			for i, id := range []spiffeid.ID{webID, second} {
				folder := files.SPIFFEFSFolder(cfg.Dir, i)
				cred := readFile(t, filepath.Join(folder, rev.CredentialBundle))
				got, err := x509svid.Parse(cred, cred)
				if err != nil || got.ID != id {
					t.Fatalf("folder %s: %v, %v", folder, got, err)
				}
				b, err := x509bundle.Load(id.TrustDomain(), filepath.Join(folder, id.TrustDomain().Name()+rev.TrustBundleSuffix))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := x509svid.Verify(got.Certificates, b); err != nil {
					t.Errorf("folder %s: SVID does not verify against its trust bundle: %v", folder, err)
				}
			}
			if _, err := os.Stat(filepath.Join(cfg.Dir, "hints.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a pinned revision wrote hints.json: %v", err)
			}
			if files.SPIFFEFSFolder(cfg.Dir, 1) != filepath.Join(cfg.Dir, "svid_1") {
				t.Errorf("second folder is %s", files.SPIFFEFSFolder(cfg.Dir, 1))
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name string
		cfg  func(*files.Config)
		set  func(*hostapi.CredentialSet)
		want string
	}{
		{"no bundle for the trust domain", nil, func(s *hostapi.CredentialSet) {
			s.X509Bundles = x509bundle.NewSet(p.fed.X509Bundle())
		}, `bundle of trust domain "example.org"`},
		{"no private key", nil, func(s *hostapi.CredentialSet) {
			svid := *s.X509SVIDs[0]
			svid.PrivateKey = nil
			s.X509SVIDs = []*x509svid.SVID{&svid}
		}, "no private key"},
		{"jwt file name with a separator", nil, func(s *hostapi.CredentialSet) {
			s.JWTSVIDs[0].Request.FileName = "../escape"
		}, "path separator"},
		{"jwt file name collides", nil, func(s *hostapi.CredentialSet) {
			s.JWTSVIDs[0].Request.FileName = "svid.pem"
		}, "written twice"},
		{"indexed name collides", func(c *files.Config) { c.CombinedFileName = "svid_1.pem" }, func(s *hostapi.CredentialSet) {
			s.X509SVIDs = append(s.X509SVIDs, p.inter.X509SVID(t, webID))
		}, "written twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Dir = t.TempDir()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			w, err := files.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			set := p.set(t)
			tt.set(set)
			_, err = w.Write(context.Background(), set)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write error = %v, want one containing %q", err, tt.want)
			}
			if s := snapshot(t, cfg.Dir); len(s) != 1 { // only "."
				t.Errorf("a failed first Write left %v", keys(s))
			}
		})
	}
}

func TestWriteCanceled(t *testing.T) {
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Write(ctx, newPKI(t).set(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write error = %v, want context.Canceled", err)
	}
}

// draftConsumer reads a credential folder as an application written from
// the newest SPIFFE Filesystem Delivery draft alone would (standard library
// only): the credential bundle in one read (§3.1), PEM blocks without
// headers or inter-block data, PRIVATE KEY then CERTIFICATE blocks (§2.1),
// and each "<trust-domain>.spiffe-trust-bundle.x509.pem" as that trust
// domain's roots only (§2.2, §3.2).
func draftConsumer(t *testing.T, dir string) (tls.Certificate, map[string]*x509.CertPool) {
	t.Helper()
	blocks := func(name string) []*pem.Block {
		data := readFile(t, filepath.Join(dir, name))
		var out []*pem.Block
		for len(data) > 0 {
			if !bytes.HasPrefix(data, []byte("-----BEGIN ")) {
				t.Fatalf("%s: inter-block data %q", name, data)
			}
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil || len(b.Headers) > 0 {
				t.Fatalf("%s: malformed block or headers", name)
			}
			out = append(out, b)
		}
		return out
	}
	cred := blocks("credential-bundle.private-key.x509.pem")
	if len(cred) < 2 || cred[0].Type != "PRIVATE KEY" {
		t.Fatalf("credential bundle: %d blocks, first %q", len(cred), cred[0].Type)
	}
	var pair tls.Certificate
	key, err := x509.ParsePKCS8PrivateKey(cred[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pair.PrivateKey = key
	for _, b := range cred[1:] {
		if b.Type != "CERTIFICATE" {
			t.Fatalf("credential bundle block %q", b.Type)
		}
		pair.Certificate = append(pair.Certificate, b.Bytes)
	}
	pools := map[string]*x509.CertPool{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		td, ok := strings.CutSuffix(de.Name(), ".spiffe-trust-bundle.x509.pem")
		if !ok {
			continue
		}
		pool := x509.NewCertPool()
		bs := blocks(de.Name())
		if len(bs) == 0 {
			t.Fatalf("%s: no CERTIFICATE block", de.Name())
		}
		for _, b := range bs {
			c, err := x509.ParseCertificate(b.Bytes)
			if b.Type != "CERTIFICATE" || err != nil {
				t.Fatalf("%s: block %q: %v", de.Name(), b.Type, err)
			}
			pool.AddCert(c)
		}
		pools[td] = pool
	}
	return pair, pools
}

// TestSPIFFEFSReadByDraftConsumer: a folder the writer lays out in the
// default spiffe-fs layout is usable by draftConsumer: the key matches the
// leaf, the leaf verifies against its own trust domain's pool only, and
// every trust domain of the set has its pool.
func TestSPIFFEFSReadByDraftConsumer(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = files.LayoutSPIFFEFS
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := p.set(t)
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	pair, pools := draftConsumer(t, cfg.Dir)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pair.PrivateKey.(crypto.Signer).Public()) {
		t.Error("the leaf is not issued to the PRIVATE KEY block's key")
	}
	if len(pools) != 2 || pools["example.org"] == nil || pools["other.org"] == nil {
		t.Fatalf("trust domains read: %v", slices.Collect(maps.Keys(pools)))
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pools["example.org"], Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the leaf does not verify against its trust domain's bundle: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pools["other.org"], Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("the leaf verifies against another trust domain's bundle")
	}
}

// TestDataLayoutKeepsOtherDotDotDirs: the data layout removes only the
// version directories it names itself, never a user's "..keep" or a
// directory that merely starts with "..".
func TestDataLayoutKeepsOtherDotDotDirs(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = files.LayoutData
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A crash leftover in the writer's own pattern goes; the rest stays.
	leftover := "..2020_01_02_03_04_05.123456"
	keep := []string{"..keep", "..2020_01_02", "..2020_01_02_03_04_05.x", "..data_old"}
	for _, d := range append([]string{leftover}, keep...) {
		if err := os.Mkdir(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, d, "precious"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := w.Write(context.Background(), p.set(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range keep {
		if _, err := os.Stat(filepath.Join(cfg.Dir, d, "precious")); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, leftover)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the leftover version directory %s stayed: %v", leftover, err)
	}
}
