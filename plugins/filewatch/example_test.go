package filewatch_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/filewatch"
)

func Example() {
	// A directory as cert-manager leaves it: tls.crt, tls.key, ca.crt.
	dir, _ := os.MkdirTemp("", "tls")
	defer os.RemoveAll(dir)
	mintInto(dir, "spiffe://example.org/web")

	cfg := filewatch.DefaultConfig()
	cfg.Dir = dir
	iss, err := filewatch.New(cfg, nil)
	if err != nil {
		panic(err)
	}
	defer iss.Close()

	creds, err := iss.Issue(context.Background(), &hostapi.IssueRequest{X509: true})
	if err != nil {
		panic(err)
	}
	svid := creds.X509SVIDs[0]
	fmt.Println(svid.ID, svid.PrivateKey != nil)
	// Output: spiffe://example.org/web true
}

// mintInto writes a CA and a leaf for id into dir, the way cert-manager
// names them.
func mintInto(dir, id string) {
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, ca, key.Public(), caKey)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)

	_ = os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
}
