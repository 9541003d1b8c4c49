package files_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = files.LayoutSPIFFEFS
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
		filepath.Join(cfg.Dir, "example.org.spiffe-trust-bundle.pem"),
		filepath.Join(cfg.Dir, "other.org.spiffe-trust-bundle.pem"),
		filepath.Join(cfg.Dir, "credential-bundle.private-key.pem"),
		filepath.Join(cfg.Dir, "jwt_svid.token"),
	}
	if !slices.Equal(res.Paths, want) {
		t.Errorf("Paths = %q, want %q", res.Paths, want)
	}

	// credential-bundle.private-key.pem: PRIVATE KEY, leaf, intermediate;
	// no root, no headers, nothing between blocks.
	cred := readFile(t, filepath.Join(cfg.Dir, files.CredentialBundleName))
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
		if got := readFile(t, filepath.Join(cfg.Dir, tc.td.Name()+files.TrustBundleSuffix)); !bytes.Equal(got, tc.want) {
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
	if _, err := os.Stat(filepath.Join(cfg.Dir, "other.org.spiffe-trust-bundle.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("de-federated trust bundle still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "example.org.spiffe-trust-bundle.pem")); err != nil {
		t.Errorf("own trust bundle gone: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
	if tr := transients(t, cfg.Dir); len(tr) > 0 {
		t.Errorf("transient files left: %v", tr)
	}
}

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
	second := spiffeid.RequireFromPath(tdFed, "/b")
	set.X509SVIDs = append(set.X509SVIDs, p.fed.X509SVID(t, second))
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	for i, id := range []spiffeid.ID{webID, second} {
		folder := files.SPIFFEFSFolder(cfg.Dir, i)
		cred := readFile(t, filepath.Join(folder, files.CredentialBundleName))
		got, err := x509svid.Parse(cred, cred)
		if err != nil || got.ID != id {
			t.Fatalf("folder %s: %v, %v", folder, got, err)
		}
		// Every folder is complete: it holds every trust domain's bundle.
		b, err := x509bundle.Load(id.TrustDomain(), filepath.Join(folder, id.TrustDomain().Name()+files.TrustBundleSuffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := x509svid.Verify(got.Certificates, b); err != nil {
			t.Errorf("folder %s: SVID does not verify against its trust bundle: %v", folder, err)
		}
	}
	if files.SPIFFEFSFolder(cfg.Dir, 1) != filepath.Join(cfg.Dir, "svid_1") {
		t.Errorf("second folder is %s", files.SPIFFEFSFolder(cfg.Dir, 1))
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
