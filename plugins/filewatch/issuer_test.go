package filewatch_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
)

func TestIssue(t *testing.T) {
	ca := testca.New(t, td)
	inter := ca.ChildCA(t)
	other := testca.New(t, td)
	good := newPair(t, ca)
	self := newSelfCA(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaChain := ca.Certify(t, webID, rsaKey.Public())
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecChain := ca.Certify(t, webID, ecKey.Public())

	tests := []struct {
		name    string
		files   func() pair           // what the directory holds
		req     *hostapi.IssueRequest // default: X509 only
		wantErr string                // "" means success
	}{
		{name: "cert-manager layout", files: func() pair { return good }},
		{name: "chain with intermediate", files: func() pair {
			p := newPair(t, inter)
			p.bundle = pemCerts(ca.Cert())
			return p
		}},
		{name: "PKCS#1 RSA key", files: func() pair {
			return pair{cert: pemCerts(rsaChain...), key: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), bundle: good.bundle}
		}},
		{name: "SEC 1 EC key after EC PARAMETERS", files: func() pair {
			key := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
				pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)
			return pair{cert: pemCerts(ecChain...), key: key, bundle: good.bundle}
		}},
		{name: "requested SPIFFE ID matches", files: func() pair { return good },
			req: &hostapi.IssueRequest{X509: true, SPIFFEID: webID}},
		{name: "CSR is ignored", files: func() pair { return good },
			req: &hostapi.IssueRequest{X509: true, CSR: []byte("not a CSR")}},
		{name: "requested SPIFFE ID differs", files: func() pair { return good },
			req:     &hostapi.IssueRequest{X509: true, SPIFFEID: spiffeid.RequireFromPath(td, "/db")},
			wantErr: `not the requested "spiffe://example.org/db"; fix the svid block's spiffe_id`},
		{name: "JWT refused", files: func() pair { return good },
			req:     &hostapi.IssueRequest{JWT: []hostapi.JWTRequest{{Audience: "a", FileName: "a"}}},
			wantErr: "X.509 credentials only"},
		{name: "JWT bundles refused", files: func() pair { return good },
			req:     &hostapi.IssueRequest{X509: true, JWTBundles: true},
			wantErr: "X.509 credentials only"},
		{name: "key of another issuance", files: func() pair {
			p := good
			p.key = newPair(t, ca).key
			return p
		}, wantErr: "does not match the leaf certificate"},
		{name: "bundle of another CA", files: func() pair {
			p := good
			p.bundle = pemCerts(other.Cert())
			return p
		}, wantErr: "verifying the chain"},
		{name: "expired", files: func() pair { return newPair(t, ca, testca.WithTTL(-time.Second)) },
			wantErr: "may have expired"},
		{name: "no URI SAN", files: func() pair { return self.leaf(t, ecKey) },
			wantErr: "has no URI SAN"},
		{name: "no spiffe URI SAN", files: func() pair { return self.leaf(t, ecKey, "https://example.org/web") },
			wantErr: "is a spiffe:// ID"},
		{name: "two URI SANs", files: func() pair {
			return self.leaf(t, ecKey, "spiffe://example.org/web", "https://example.org/web")
		}, wantErr: "has 2 URI SANs"},
		{name: "two SPIFFE IDs", files: func() pair {
			return self.leaf(t, ecKey, "spiffe://example.org/web", "spiffe://example.org/db")
		}, wantErr: "has 2 URI SANs"},
		{name: "empty certificate", files: func() pair {
			p := good
			p.cert = nil
			return p
		}, wantErr: "holds no certificate"},
		{name: "half-written certificate", files: func() pair {
			p := good
			p.cert = p.cert[:len(p.cert)/2]
			return p
		}, wantErr: "not a PEM block"},
		{name: "key in the certificate file", files: func() pair {
			p := good
			p.cert = append(append([]byte{}, p.cert...), p.key...)
			return p
		}, wantErr: "only CERTIFICATE blocks"},
		{name: "empty key", files: func() pair {
			p := good
			p.key = []byte("\n")
			return p
		}, wantErr: "holds no private key"},
		{name: "encrypted key", files: func() pair {
			p := good
			p.key = pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})
			return p
		}, wantErr: "the key is encrypted"},
		{name: "empty bundle", files: func() pair {
			p := good
			p.bundle = nil
			return p
		}, wantErr: "CA bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tt.files()
			writeRenamed(t, dir, p)
			iss := newIssuer(t, dir, "100ms")
			req := tt.req
			if req == nil {
				req = &hostapi.IssueRequest{X509: true}
			}
			creds, err := iss.Issue(context.Background(), req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Issue error = %v, want one containing %q", err, tt.wantErr)
				}
				if creds != nil {
					t.Fatal("Issue returned credentials with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if err := checkCreds(creds); err != nil {
				t.Fatal(err)
			}
			s := creds.X509SVIDs[0]
			if s.ID != webID {
				t.Errorf("SPIFFE ID = %s, want %s", s.ID, webID)
			}
			if _, ok := creds.X509Bundles.Get(td); !ok {
				t.Errorf("no bundle for %s", td)
			}
			if creds.JWTBundles != nil || creds.JWTSVIDs != nil {
				t.Error("returned JWT material")
			}
		})
	}
}

func TestIssueMissingFiles(t *testing.T) {
	ca := testca.New(t, td)
	tests := []struct {
		name    string
		remove  string // "" removes the directory
		wantErr string
	}{
		{name: "no directory", wantErr: "opening the directory"},
		{name: "no certificate", remove: certName, wantErr: "reading the certificate (cert_file)"},
		{name: "no key", remove: keyName, wantErr: "reading the private key (key_file)"},
		{name: "no bundle", remove: bundleName, wantErr: "reading the CA bundle (bundle_file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeRenamed(t, dir, newPair(t, ca))
			if err := os.RemoveAll(filepath.Join(dir, tt.remove)); err != nil {
				t.Fatal(err)
			}
			iss := newIssuer(t, dir, "100ms")
			_, err := iss.Issue(context.Background(), &hostapi.IssueRequest{X509: true})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Issue error = %v, want one naming %q and containing %q", err, dir, tt.wantErr)
			}
		})
	}
}

func TestIssueThroughData(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	w := &atomicWriter{dir: dir}
	a := newPair(t, ca)
	w.write(t, a)
	iss := newIssuer(t, dir, "100ms")
	creds, err := iss.Issue(context.Background(), &hostapi.IssueRequest{X509: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := creds.X509SVIDs[0].Certificates[0].SerialNumber; got.Cmp(a.serial) != 0 {
		t.Fatalf("serial %x, want %x", got, a.serial)
	}
	// A stray file beside ..data is not read: the set comes from the
	// version directory.
	if err := os.Remove(filepath.Join(dir, keyName)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyName), newPair(t, ca).key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Issue(context.Background(), &hostapi.IssueRequest{X509: true}); err != nil {
		t.Fatalf("Issue read a file outside ..data: %v", err)
	}
}

func TestIssueAfterClose(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	writeRenamed(t, dir, newPair(t, ca))
	iss := newIssuer(t, dir, "100ms")
	if err := iss.Close(); err != nil {
		t.Fatal(err)
	}
	if err := iss.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := iss.Issue(context.Background(), &hostapi.IssueRequest{X509: true}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Issue after Close = %v, want a closed error", err)
	}
	if err := iss.Watch(context.Background(), &hostapi.IssueRequest{X509: true}, func(*hostapi.Credentials) {}, func(error) {}); err == nil {
		t.Fatal("Watch after Close returned nil")
	}
}
