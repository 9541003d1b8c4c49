package dev_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/dev"
)

func Example() {
	iss, err := dev.New(dev.DefaultConfig(), nil) // NOT FOR PRODUCTION
	if err != nil {
		panic(err)
	}
	// The core generates the key and sends a CSR; the key stays with it.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	creds, err := iss.Issue(context.Background(), &hostapi.IssueRequest{
		SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/web"),
		X509:     true,
		CSR:      csr,
	})
	if err != nil {
		panic(err)
	}
	id, _, err := x509svid.Verify(creds.X509SVIDs[0].Certificates, creds.X509Bundles)
	fmt.Println(id, err)
	// Output: spiffe://example.org/web <nil>
}
