package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// caTTL is the lifetime of every CA certificate the package mints.
const caTTL = 24 * time.Hour

// CA is a certificate authority of one trust domain. A root CA is made by
// [New]; [CA.ChildCA] makes intermediates. All CAs of a trust domain share
// one JWT signing key. A CA is safe for concurrent use: it is immutable
// after creation.
type CA struct {
	td     spiffeid.TrustDomain
	cert   *x509.Certificate
	key    crypto.Signer
	parent *CA

	jwtKey *ecdsa.PrivateKey
	jwtKID string
}

// Option customises a minted X509-SVID.
type Option func(*options)

type options struct {
	ttl  time.Duration
	hint string
}

// WithTTL sets the X509-SVID's lifetime. Default: 1h.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithHint sets the X509-SVID's hint. Default: "".
func WithHint(h string) Option { return func(o *options) { o.hint = h } }

// New returns a root CA of td with an ECDSA P-256 key and a fresh JWT
// signing key. It fails t on error.
func New(t testing.TB, td spiffeid.TrustDomain) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{Organization: []string{"testca"}, CommonName: "root " + td.Name()},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	cert := createCert(t, tmpl, tmpl, key.Public(), key)
	return &CA{td: td, cert: cert, key: key, jwtKey: newKey(t), jwtKID: newKID(t)}
}

// ChildCA returns an intermediate CA signed by ca, sharing its JWT key.
func (ca *CA) ChildCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{Organization: []string{"testca"}, CommonName: "intermediate " + ca.td.Name()},
		URIs:                  []*url.URL{ca.td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	cert := createCert(t, tmpl, ca.cert, key.Public(), ca.key)
	return &CA{td: ca.td, cert: cert, key: key, parent: ca, jwtKey: ca.jwtKey, jwtKID: ca.jwtKID}
}

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Cert returns the CA's own certificate.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// X509Bundle returns a new bundle holding the root CA's certificate.
func (ca *CA) X509Bundle() *x509bundle.Bundle {
	root := ca
	for root.parent != nil {
		root = root.parent
	}
	return x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{root.cert})
}

// JWTBundle returns a new bundle holding the CA's JWT signing key.
func (ca *CA) JWTBundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(ca.td, map[string]crypto.PublicKey{ca.jwtKID: ca.jwtKey.Public()})
}

// JWTKeyID returns the key ID ("kid") of the CA's JWT signing key.
func (ca *CA) JWTKeyID() string { return ca.jwtKID }

// X509SVID mints an X509-SVID for id with a fresh ECDSA P-256 key. Its
// chain is the leaf followed by every intermediate up to (not including)
// the root.
func (ca *CA) X509SVID(t testing.TB, id spiffeid.ID, opts ...Option) *x509svid.SVID {
	t.Helper()
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	key := newKey(t)
	return &x509svid.SVID{ID: id, Certificates: ca.Certify(t, id, key.Public(), opts...), PrivateKey: key, Hint: o.hint}
}

// Certify issues a chain for id certifying pub, as a CA signing a CSR
// does: the leaf followed by every intermediate up to (not including) the
// root.
func (ca *CA) Certify(t testing.TB, id spiffeid.ID, pub crypto.PublicKey, opts ...Option) []*x509.Certificate {
	t.Helper()
	o := options{ttl: time.Hour}
	for _, opt := range opts {
		opt(&o)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{Organization: []string{"testca"}},
		URIs:                  []*url.URL{id.URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(o.ttl),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	chain := []*x509.Certificate{createCert(t, tmpl, ca.cert, pub, ca.key)}
	for c := ca; c.parent != nil; c = c.parent {
		chain = append(chain, c.cert)
	}
	return chain
}

// SignJWT returns a JWT-SVID token for id with the given audience, signed
// ES256 with the CA's JWT key and carrying its key ID. Unlike the other
// methods it returns an error rather than failing a test, so that it can
// run on a server goroutine.
func (ca *CA) SignJWT(id spiffeid.ID, audience []string, expiry time.Time) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ca.jwtKey, KeyID: ca.jwtKID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("creating JWT signer: %w", err)
	}
	now := time.Now()
	token, err := jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		Expiry:   jwt.NewNumericDate(expiry),
		IssuedAt: jwt.NewNumericDate(now),
	}).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing JWT: %w", err)
	}
	return token, nil
}

// JWTSVID mints a JWT-SVID for id, valid for ttl, and parses it back.
func (ca *CA) JWTSVID(t testing.TB, id spiffeid.ID, audience []string, ttl time.Duration) *jwtsvid.SVID {
	t.Helper()
	token, err := ca.SignJWT(id, audience, time.Now().Add(ttl))
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	svid, err := jwtsvid.ParseAndValidate(token, ca.JWTBundle(), audience)
	if err != nil {
		t.Fatalf("testca: parsing minted JWT-SVID: %v", err)
	}
	return svid
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("testca: creating certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parsing certificate: %v", err)
	}
	return cert
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testca: generating key: %v", err)
	}
	return key
}

func newSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("testca: generating serial: %v", err)
	}
	return n.Add(n, big.NewInt(1))
}

func newKID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testca: generating key ID: %v", err)
	}
	return hex.EncodeToString(b)
}
