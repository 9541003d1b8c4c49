package files_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/files"
)

func TestFlatFormats(t *testing.T) {
	p := newPKI(t)
	set := p.set(t)
	svid := set.X509SVIDs[0]
	leaf, inter := svid.Certificates[0], svid.Certificates[1]
	root, fedRoot := p.root.Cert(), p.fed.Cert()
	// An expired certificate in the trust domain's bundle, for omit_expired.
	expired := p.root.X509SVID(t, spiffeid.RequireFromPath(tdMain, "/old"), testca.WithTTL(-30*time.Second)).Certificates[0]
	key := pemKey(t, svid.PrivateKey)

	tests := []struct {
		name  string
		cfg   func(c *files.Config)
		set   func(s *hostapi.CredentialSet)
		want  map[string][]byte
		paths []string
	}{
		{
			name: "defaults",
			want: map[string][]byte{
				"svid.pem":        pemCerts(leaf, inter),
				"svid_key.pem":    key,
				"svid_bundle.pem": pemCerts(root),
				"jwt_svid.token":  []byte(set.JWTSVIDs[0].SVID.Marshal()),
			},
			paths: []string{"svid_bundle.pem", "svid.pem", "svid_key.pem", "jwt_svid.token"},
		},
		{
			name: "add_intermediates_to_bundle",
			cfg:  func(c *files.Config) { c.AddIntermediatesToBundle = true },
			want: map[string][]byte{
				"svid.pem":        pemCerts(leaf),
				"svid_bundle.pem": pemCerts(root, inter),
			},
		},
		{
			name: "include_federated_domains",
			cfg:  func(c *files.Config) { c.IncludeFederatedDomains = true },
			want: map[string][]byte{"svid_bundle.pem": pemCerts(root, fedRoot)},
		},
		{
			name: "intermediates then federated, as spiffe-helper orders them",
			cfg: func(c *files.Config) {
				c.AddIntermediatesToBundle = true
				c.IncludeFederatedDomains = true
			},
			want: map[string][]byte{"svid.pem": pemCerts(leaf), "svid_bundle.pem": pemCerts(root, inter, fedRoot)},
		},
		{
			name: "omit_expired",
			cfg:  func(c *files.Config) { c.OmitExpired = true },
			set: func(s *hostapi.CredentialSet) {
				s.X509Bundles = x509bundle.NewSet(x509bundle.FromX509Authorities(tdMain, []*x509.Certificate{expired, root}))
			},
			want: map[string][]byte{"svid_bundle.pem": pemCerts(root)},
		},
		{
			name: "expired kept without omit_expired",
			set: func(s *hostapi.CredentialSet) {
				s.X509Bundles = x509bundle.NewSet(x509bundle.FromX509Authorities(tdMain, []*x509.Certificate{expired, root}))
			},
			want: map[string][]byte{"svid_bundle.pem": pemCerts(expired, root)},
		},
		{
			name: "combined file: key then full chain",
			cfg: func(c *files.Config) {
				c.CombinedFileName = "combined.pem"
				c.AddIntermediatesToBundle = true
			},
			want:  map[string][]byte{"combined.pem": append(append([]byte{}, key...), pemCerts(leaf, inter)...)},
			paths: []string{"svid_bundle.pem", "svid.pem", "svid_key.pem", "combined.pem", "jwt_svid.token"},
		},
		{
			name: "bundle per trust domain",
			cfg:  func(c *files.Config) { c.BundlePerTrustDomain = true },
			want: map[string][]byte{
				"example.org.bundle.pem": pemCerts(root),
				"other.org.bundle.pem":   pemCerts(fedRoot),
			},
			paths: []string{"example.org.bundle.pem", "other.org.bundle.pem", "svid_bundle.pem", "svid.pem", "svid_key.pem", "jwt_svid.token"},
		},
		{
			name: "custom names",
			cfg: func(c *files.Config) {
				c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName = "tls.crt", "tls.key", "ca.crt"
			},
			want:  map[string][]byte{"tls.crt": pemCerts(leaf, inter), "tls.key": key, "ca.crt": pemCerts(root)},
			paths: []string{"ca.crt", "tls.crt", "tls.key", "jwt_svid.token"},
		},
		{
			name: "jwt only",
			set: func(s *hostapi.CredentialSet) {
				s.X509SVIDs, s.X509Bundles = nil, nil
			},
			want:  map[string][]byte{"jwt_svid.token": []byte(set.JWTSVIDs[0].SVID.Marshal())},
			paths: []string{"jwt_svid.token"},
		},
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
			s := *set
			if tt.set != nil {
				tt.set(&s)
			}
			res, err := w.Write(context.Background(), &s)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := readFile(t, filepath.Join(cfg.Dir, name)); !bytes.Equal(got, want) {
					t.Errorf("%s:\ngot  %q\nwant %q", name, got, want)
				}
			}
			if tt.paths != nil {
				var want []string
				for _, n := range tt.paths {
					want = append(want, filepath.Join(cfg.Dir, n))
				}
				if !slices.Equal(res.Paths, want) {
					t.Errorf("Paths = %q, want %q", res.Paths, want)
				}
			}
			if len(s.X509SVIDs) > 0 {
				// The pair loads back with go-spiffe and the key is the leaf's.
				got, err := x509svid.Load(filepath.Join(cfg.Dir, cfg.SVIDFileName), filepath.Join(cfg.Dir, cfg.SVIDKeyFileName))
				if err != nil {
					t.Fatalf("loading the written SVID: %v", err)
				}
				if got.ID != webID || !keyMatches(got.Certificates[0], got.PrivateKey) {
					t.Errorf("loaded SVID %v does not match its key", got.ID)
				}
			}
		})
	}
}

func TestJWTBundleFile(t *testing.T) {
	p := newPKI(t)
	set := p.set(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.JWTBundleFileName = "jwt_bundle.json"
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	raw := readFile(t, filepath.Join(cfg.Dir, "jwt_bundle.json"))
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("jwt bundle file is not a JSON object of strings: %v: %s", err, raw)
	}
	if len(m) != 2 {
		t.Fatalf("got trust domains %v, want example.org and other.org", m)
	}
	if bytes.HasSuffix(raw, []byte("\n")) {
		t.Errorf("jwt bundle file ends with a newline; spiffe-helper writes none")
	}
	for _, ca := range []*struct {
		td   spiffeid.TrustDomain
		want *jwtbundle.Bundle
	}{{tdMain, p.root.JWTBundle()}, {tdFed, p.fed.JWTBundle()}} {
		jwks, err := base64.StdEncoding.DecodeString(m[ca.td.Name()])
		if err != nil {
			t.Fatalf("%s: value is not standard base64: %v", ca.td, err)
		}
		got, err := jwtbundle.Parse(ca.td, jwks)
		if err != nil {
			t.Fatalf("%s: value is not a JWKS: %v", ca.td, err)
		}
		if !got.Equal(ca.want) {
			t.Errorf("%s: bundle does not round-trip", ca.td)
		}
	}
	// The token file holds the bare token.
	if got, want := string(readFile(t, filepath.Join(cfg.Dir, "jwt_svid.token"))), set.JWTSVIDs[0].SVID.Marshal(); got != want {
		t.Errorf("jwt_svid.token = %q, want %q", got, want)
	}
}

func TestMultipleSVIDs(t *testing.T) {
	p := newPKI(t)
	set := p.set(t)
	ids := []spiffeid.ID{webID, spiffeid.RequireFromPath(tdMain, "/a"), spiffeid.RequireFromPath(tdFed, "/b")}
	set.X509SVIDs = []*x509svid.SVID{set.X509SVIDs[0], p.inter.X509SVID(t, ids[1]), p.fed.X509SVID(t, ids[2])}

	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.CombinedFileName = "combined.pem"
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		svid, err := x509svid.Load(filepath.Join(cfg.Dir, files.IndexedName("svid.pem", i)), filepath.Join(cfg.Dir, files.IndexedName("svid_key.pem", i)))
		if err != nil {
			t.Fatalf("svid %d: %v", i, err)
		}
		if svid.ID != id {
			t.Errorf("svid %d is %v, want %v", i, svid.ID, id)
		}
		// Each SVID's bundle is its own trust domain's.
		b, err := x509bundle.Load(id.TrustDomain(), filepath.Join(cfg.Dir, files.IndexedName("svid_bundle.pem", i)))
		if err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
		if _, _, err := x509svid.Verify(svid.Certificates, b); err != nil {
			t.Errorf("svid %d does not verify against its bundle: %v", i, err)
		}
		combined := readFile(t, filepath.Join(cfg.Dir, files.IndexedName("combined.pem", i)))
		if c, err := x509svid.Parse(combined, combined); err != nil || c.ID != id {
			t.Errorf("combined %d: %v, %v", i, c, err)
		}
	}
}

func TestIndexedName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		i    int
		want string
	}{
		{"first keeps the name", "svid.pem", 0, "svid.pem"},
		{"before the extension", "svid.pem", 1, "svid_1.pem"},
		{"key", "svid_key.pem", 2, "svid_key_2.pem"},
		{"last dot only", "a.b.pem", 3, "a.b_3.pem"},
		{"no extension", "tls", 1, "tls_1"},
		{"dot file", ".pem", 1, ".pem_1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := files.IndexedName(tt.in, tt.i); got != tt.want {
				t.Errorf("IndexedName(%q, %d) = %q, want %q", tt.in, tt.i, got, tt.want)
			}
		})
	}
}
