package conformance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
)

// testCreds is a small CA minting real credentials for the writer and
// notifier checks, and real CSRs for the issuer checks. It needs no
// testing.T, so that the CLI uses it too.
type testCreds struct {
	id     spiffeid.ID
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
}

func newTestCreds(rawID string) (*testCreds, error) {
	id, err := spiffeid.FromString(rawID)
	if err != nil {
		return nil, fmt.Errorf("parsing the SPIFFE ID to test with: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "svidagent conformance CA"},
		URIs:                  []*url.URL{id.TrustDomain().ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating the test CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCreds{id: id, caKey: key, caCert: cert}, nil
}

// svid mints a fresh X509-SVID with its key; serial distinguishes
// successive ones.
func (c *testCreds) svid(serial int64) (*x509svid.SVID, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		URIs:         []*url.URL{c.id.URL()},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, key.Public(), c.caKey)
	if err != nil {
		return nil, fmt.Errorf("minting a test SVID: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: c.id, Certificates: []*x509.Certificate{leaf}, PrivateKey: key}, nil
}

// set returns a complete credential set, as the core hands a writer.
func (c *testCreds) set(serial int64) (*hostapi.CredentialSet, error) {
	s, err := c.svid(serial)
	if err != nil {
		return nil, err
	}
	return &hostapi.CredentialSet{
		Name:        "conformance",
		TrustDomain: c.id.TrustDomain(),
		Credentials: hostapi.Credentials{
			X509SVIDs:   []*x509svid.SVID{s},
			X509Bundles: x509bundle.NewSet(x509bundle.FromX509Authorities(c.id.TrustDomain(), []*x509.Certificate{c.caCert})),
		},
		Changed: hostapi.ChangedX509,
	}, nil
}

// event returns a rotation event describing s, as the core sends a
// notifier after the writers finished.
func (c *testCreds) event(s *x509svid.SVID, paths []string) *hostapi.RotationEvent {
	leaf := s.Certificates[0]
	return &hostapi.RotationEvent{
		Name: "conformance", Reason: hostapi.ChangedX509, Initial: true, Time: time.Now(),
		X509: []hostapi.X509Identity{{SPIFFEID: s.ID.String(), Serial: fmt.Sprintf("%x", leaf.SerialNumber),
			NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}},
		Paths: paths,
	}
}

// csr returns a DER PKCS#10 request for the suite's SPIFFE ID, signed with
// a fresh key, as the core sends an issuer, and the key's public half.
func (c *testCreds) csr() ([]byte, crypto.PublicKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{c.id.URL()}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating a CSR: %w", err)
	}
	return der, key.Public(), nil
}
