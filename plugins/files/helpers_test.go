package files_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
)

var (
	tdMain = spiffeid.RequireTrustDomainFromString("example.org")
	tdFed  = spiffeid.RequireTrustDomainFromString("other.org")
	webID  = spiffeid.RequireFromPath(tdMain, "/web")
)

// pki is a trust domain with a root and an intermediate that signs the
// SVIDs, plus a federated trust domain.
type pki struct {
	root, inter, fed *testca.CA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	root := testca.New(t, tdMain)
	return &pki{root: root, inter: root.ChildCA(t), fed: testca.New(t, tdFed)}
}

// set mints a fresh X509-SVID (leaf, intermediate) and a JWT-SVID and
// returns a complete credential set with both trust domains' bundles.
func (p *pki) set(t testing.TB) *hostapi.CredentialSet {
	t.Helper()
	svid := p.inter.X509SVID(t, webID)
	jwt := p.inter.JWTSVID(t, webID, []string{"db"}, time.Hour)
	return &hostapi.CredentialSet{
		Name:        "web",
		TrustDomain: tdMain,
		Credentials: hostapi.Credentials{
			X509SVIDs:   []*x509svid.SVID{svid},
			X509Bundles: x509bundle.NewSet(p.root.X509Bundle(), p.fed.X509Bundle()),
			JWTSVIDs:    []hostapi.JWTSVID{{Request: hostapi.JWTRequest{Audience: "db", FileName: "jwt_svid.token"}, SVID: jwt}},
			JWTBundles:  jwtbundle.NewSet(p.root.JWTBundle(), p.fed.JWTBundle()),
		},
		Changed: hostapi.ChangedX509 | hostapi.ChangedJWTSVID | hostapi.ChangedJWTBundle,
	}
}

// pemCerts is what spiffe-helper writes for certs: CERTIFICATE blocks.
func pemCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func pemKey(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot returns every entry of dir (recursively, not following
// symlinks) with its content or link target, for before/after comparison.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link:" + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			out[rel] = fi.Mode().Perm().String() + ":" + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// transients lists the temporary and backup files left in dir.
func transients(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for name := range snapshot(t, dir) {
		if strings.Contains(name, ".svidagent-") || strings.Contains(name, "..data_tmp") {
			out = append(out, name)
		}
	}
	return out
}

// keyMatches reports whether key is the private key of cert.
func keyMatches(cert *x509.Certificate, key any) bool {
	pub, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return false
	}
	eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(cert.PublicKey)
}
