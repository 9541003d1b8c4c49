package dev

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

func init() {
	registry.RegisterIssuer("dev", DefaultConfig, func(c *Config, env registry.Env) (hostapi.Issuer, error) {
		return New(c, env.Logger)
	})
}

// backdate is how far before now certificates start, for clock skew.
const backdate = 10 * time.Second

// Issuer is an in-memory CA. NOT FOR PRODUCTION. It implements
// [hostapi.Issuer] and is safe for concurrent use.
type Issuer struct {
	td    spiffeid.TrustDomain
	ttl   time.Duration
	caTTL time.Duration
	now   func() time.Time

	jwtKey *ecdsa.PrivateKey
	jwtKID string

	mu    sync.Mutex
	ca    *authority   // signs new leaves
	roots []*authority // the bundle: ca and older roots not yet expired
}

var _ hostapi.Issuer = (*Issuer)(nil)

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New validates cfg, creates the CA and the JWT signing key, and logs a
// warning that the issuer is not for production. A nil logger discards.
func New(cfg *Config, logger *slog.Logger) (*Issuer, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the JWT signing key: %w", err)
	}
	kid := make([]byte, 16)
	if _, err := rand.Read(kid); err != nil {
		return nil, fmt.Errorf("generating the JWT key ID: %w", err)
	}
	i := &Issuer{td: p.td, ttl: p.ttl, caTTL: p.caTTL, now: time.Now, jwtKey: jwtKey, jwtKID: hex.EncodeToString(kid)}
	if err := i.rotateLocked(i.now()); err != nil {
		return nil, err
	}
	logger.Warn("dev issuer: in-memory CA, not for production", "trust_domain", p.td.Name(), "ttl", p.ttl, "ca_ttl", p.caTTL)
	return i, nil
}

// TrustDomain returns the CA's trust domain.
func (i *Issuer) TrustDomain() spiffeid.TrustDomain { return i.td }

// Issue signs req.CSR for req.SPIFFEID when req.X509 is set, and mints a
// JWT-SVID for each of req.JWT. Lifetimes are req.TTL when positive, else
// the configured ttl. The X509-SVID's PrivateKey is nil: the core attaches
// the key that signed the CSR.
func (i *Issuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if req == nil {
		return nil, errors.New("issuing from the dev issuer: nil request")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("issuing from the dev issuer: %w", err)
	}
	if req.SPIFFEID.IsZero() {
		return nil, errors.New("issuing from the dev issuer: no SPIFFE ID requested; the dev issuer signs only the SPIFFE ID it is asked for, set spiffe_id")
	}
	if req.SPIFFEID.TrustDomain() != i.td {
		return nil, fmt.Errorf("issuing from the dev issuer: SPIFFE ID %q is outside its trust domain %q; use an ID under spiffe://%s/ or set the issuer's trust_domain", req.SPIFFEID, i.td.Name(), i.td.Name())
	}
	ttl := i.ttl
	if req.TTL > 0 {
		ttl = req.TTL
	}
	if ttl >= i.caTTL {
		return nil, fmt.Errorf("issuing from the dev issuer: ttl %s is not shorter than the CA's ca_ttl %s; lower the svid's ttl or raise ca_ttl", ttl, i.caTTL)
	}
	ca, roots, now, err := i.authorityFor(ttl)
	if err != nil {
		return nil, err
	}

	creds := &hostapi.Credentials{}
	if req.X509 {
		leaf, err := i.sign(ca, req, now, ttl)
		if err != nil {
			return nil, fmt.Errorf("issuing an X509-SVID for %s from the dev issuer: %w", req.SPIFFEID, err)
		}
		creds.X509SVIDs = []*x509svid.SVID{{ID: req.SPIFFEID, Certificates: []*x509.Certificate{leaf}}}
		creds.X509Bundles = x509bundle.NewSet(x509bundle.FromX509Authorities(i.td, roots))
	}
	for _, jr := range req.JWT {
		svid, err := i.mintJWT(req.SPIFFEID, jr, now, ttl)
		if err != nil {
			return nil, fmt.Errorf("issuing a JWT-SVID for %s from the dev issuer: %w", req.SPIFFEID, err)
		}
		creds.JWTSVIDs = append(creds.JWTSVIDs, hostapi.JWTSVID{Request: jr, SVID: svid})
	}
	if req.JWTBundles || len(req.JWT) > 0 {
		creds.JWTBundles = jwtbundle.NewSet(jwtbundle.FromJWTAuthorities(i.td, map[string]crypto.PublicKey{i.jwtKID: i.jwtKey.Public()}))
	}
	return creds, nil
}

// authorityFor returns the CA to sign a leaf living ttl from now, rotating
// it if the current one would expire first, the bundle's roots, and now.
// It reads the clock under the lock, so that no leaf starts before the CA
// that signs it.
func (i *Issuer) authorityFor(ttl time.Duration) (*authority, []*x509.Certificate, time.Time, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.now()
	if now.Add(ttl).After(i.ca.cert.NotAfter) {
		if err := i.rotateLocked(now); err != nil {
			return nil, nil, time.Time{}, err
		}
	}
	roots := make([]*x509.Certificate, 0, len(i.roots))
	live := i.roots[:0]
	for _, r := range i.roots {
		if r == i.ca || r.cert.NotAfter.After(now) {
			live = append(live, r)
			roots = append(roots, r.cert)
		}
	}
	i.roots = live
	return i.ca, roots, now, nil
}

// rotateLocked makes a new root CA the signer, keeping the older roots
// that have not expired in the bundle.
func (i *Issuer) rotateLocked(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the dev CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"svidagent dev issuer (NOT FOR PRODUCTION)"}, CommonName: i.td.Name()},
		URIs:                  []*url.URL{i.td.ID().URL()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(i.caTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("creating the dev CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing the dev CA certificate: %w", err)
	}
	ca := &authority{cert: cert, key: key}
	roots := []*authority{ca}
	for _, r := range i.roots {
		if r.cert.NotAfter.After(now) {
			roots = append(roots, r)
		}
	}
	i.ca, i.roots = ca, roots
	return nil
}

func (i *Issuer) sign(ca *authority, req *hostapi.IssueRequest, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	if len(req.CSR) == 0 {
		return nil, errors.New("the request has no CSR; the core must send one with an X.509 request")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, fmt.Errorf("parsing the CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("checking the CSR's signature: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"svidagent dev issuer"}},
		URIs:                  []*url.URL{req.SPIFFEID.URL()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ttl),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the signed certificate: %w", err)
	}
	return leaf, nil
}

func (i *Issuer) mintJWT(id spiffeid.ID, jr hostapi.JWTRequest, now time.Time, ttl time.Duration) (*jwtsvid.SVID, error) {
	if jr.Audience == "" {
		return nil, errors.New("the JWT request has no audience; set audience")
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: i.jwtKey, KeyID: i.jwtKID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the JWT signer: %w", err)
	}
	aud := jr.Audiences()
	token, err := jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(aud),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt: jwt.NewNumericDate(now),
	}).Serialize()
	if err != nil {
		return nil, fmt.Errorf("signing the JWT: %w", err)
	}
	// Parse it back the way a consumer does, so that what is returned is
	// exactly what go-spiffe sees.
	svid, err := jwtsvid.ParseInsecure(token, aud)
	if err != nil {
		return nil, fmt.Errorf("parsing the minted JWT-SVID: %w", err)
	}
	return svid, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
