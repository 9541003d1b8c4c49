// Command issuer is a starter for a svidagent issuer plugin that signs the
// core's CSR: copy this directory, rename the plugin in info, and replace
// the in-memory CA with a call to your real one (step-ca, Vault, an HSM)
// in Issue. The same source builds as a WebAssembly module and as a
// go-plugin subprocess:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o issuer.wasm .
//	go build -o issuer .
//
// THIS IS A TEMPLATE, NOT A CA FOR PRODUCTION. Its CA is generated in
// memory by Configure from the config's trust_domain and forgotten when the
// plugin stops: every restart makes a new trust bundle (and so does a WASM
// instance that the host discards and rebuilds from the last Configure,
// hostapi/ABI.md §6), and the CA key is protected by nothing but the
// process. A real issuer keeps no such state: its CA lives elsewhere.
//
// conformance_test.go runs the conformance suite over it.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// info is the plugin's answer to Describe. A signing issuer claims no
// capability; one that owns its keys (returns its own private key, as the
// Workload API does) would claim "issuer.returns_keys". ExampleConfigJSON
// is what `svidagent conformance -plugin issuer.wasm` runs with when given
// no -config.
var info = sdk.Info{Name: "issuer-template", Version: "0.1.0",
	ExampleConfigJSON: []byte(`{"trust_domain":"example.org"}`)}

const (
	// caLifetime is the in-memory CA's lifetime; leaves never outlive it.
	caLifetime = 7 * 24 * time.Hour
	// backdate is how far before now a leaf's NotBefore is set, for
	// consumers whose clocks lag a little.
	backdate = 30 * time.Second
)

// config is the plugin's config {} block, as JSON.
type config struct {
	// TrustDomain is the trust domain the CA signs for, e.g.
	// "example.org". Required.
	TrustDomain string `json:"trust_domain"`
	// DefaultTTL is the lifetime of a certificate when the svid block
	// asks for none. Default: "1h".
	DefaultTTL string `json:"default_ttl,omitempty"`
	// BackendDown makes Issue answer UNAVAILABLE, as a real issuer does
	// when its CA cannot be reached. Default: false. It is for trying the
	// agent's retry and health reporting; delete it in a real plugin.
	BackendDown bool `json:"backend_down,omitempty"`

	td         spiffeid.TrustDomain
	defaultTTL time.Duration
}

// ca is the in-memory CA.
type ca struct {
	td   spiffeid.TrustDomain
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

type issuer struct {
	mu  sync.RWMutex
	cfg config
	ca  *ca
	// down is the BackendDown switch. Configure sets it from the config;
	// this package's tests also flip it directly.
	down bool
}

var (
	_ hostapi.Issuer = (*issuer)(nil)
	_ sdk.Configurer = (*issuer)(nil)
)

func parse(b []byte) (config, hostapi.FieldErrors) {
	c := config{DefaultTTL: "1h"}
	var es hostapi.FieldErrors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		es.Add("", "the config must be a JSON object with trust_domain: "+err.Error())
		return c, es
	}
	if c.TrustDomain == "" {
		es.Add("trust_domain", `is required, e.g. "example.org"`)
	} else if td, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		es.Add("trust_domain", fmt.Sprintf("%q is not a trust domain name: %v", c.TrustDomain, err))
	} else {
		c.td = td
	}
	d, err := time.ParseDuration(c.DefaultTTL)
	switch {
	case err != nil:
		es.Add("default_ttl", fmt.Sprintf("%q is not a duration such as \"1h\": %v", c.DefaultTTL, err))
	case d <= 0 || d > caLifetime:
		es.Add("default_ttl", fmt.Sprintf("must be positive and at most %s, not %s", caLifetime, d))
	}
	c.defaultTTL = d
	return c, es
}

// Validate implements sdk.Configurer.
func (i *issuer) Validate(b []byte) hostapi.FieldErrors { _, es := parse(b); return es }

// Configure implements sdk.Configurer. It may be called again with a new
// config and must then behave as if only the new one was applied: the CA
// is kept when the trust domain did not change, and made anew when it did.
func (i *issuer) Configure(_ context.Context, b []byte) error {
	c, es := parse(b)
	if len(es) > 0 {
		return es
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ca == nil || i.ca.td != c.td {
		a, err := newCA(c.td)
		if err != nil {
			return sdk.Errorf(sdk.CodeInternal, "creating the in-memory CA for %s: %w", c.td, err)
		}
		i.ca = a
	}
	i.cfg = c
	i.down = c.BackendDown
	return nil
}

// setBackendDown takes the "backend" down or brings it back.
func (i *issuer) setBackendDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

func newCA(td spiffeid.TrustDomain) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "issuer-template CA (not for production)"},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{td: td, key: key, cert: cert}, nil
}

func randSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Issue implements hostapi.Issuer: it signs req.CSR for req.SPIFFEID,
// valid for req.TTL (or default_ttl), and returns the chain with a nil
// private key (the core attaches the key it kept) and the trust bundle.
// Errors carry a code: INVALID_ARGUMENT for a request it cannot serve,
// UNAVAILABLE when the backend is down (the core retries with backoff).
func (i *issuer) Issue(_ context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	i.mu.RLock()
	a, cfg, down := i.ca, i.cfg, i.down
	i.mu.RUnlock()
	switch {
	case a == nil:
		return nil, sdk.Error(sdk.CodeFailedPrecondition, "issuing: the plugin is not configured")
	case down:
		return nil, sdk.Error(sdk.CodeUnavailable, "issuing: the CA backend is down (backend_down is set); bring it back and the agent retries")
	case len(req.JWT) > 0:
		return nil, sdk.Error(sdk.CodeUnimplemented, "issuing: this issuer signs X509-SVIDs only; remove the svid block's jwt blocks")
	case !req.X509:
		return &hostapi.Credentials{}, nil
	case req.SPIFFEID.IsZero():
		return nil, sdk.Error(sdk.CodeInvalidArgument, "issuing: no SPIFFE ID was asked for; set spiffe_id in the svid block")
	case req.SPIFFEID.TrustDomain() != a.td:
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "issuing %s: this CA signs for trust domain %s only", req.SPIFFEID, a.td)
	case req.TTL < 0:
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "issuing %s: negative TTL %s", req.SPIFFEID, req.TTL)
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "issuing %s: parsing the CSR: %w", req.SPIFFEID, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "issuing %s: checking the CSR's signature: %w", req.SPIFFEID, err)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = cfg.defaultTTL
	}
	now := time.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	serial, err := randSerial()
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "issuing %s: %w", req.SPIFFEID, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The URI SAN is the one identity of an X509-SVID: the requested
		// ID, whatever the CSR asked for.
		URIs:                  []*url.URL{req.SPIFFEID.URL()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "issuing %s: signing the CSR: %w", req.SPIFFEID, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "issuing %s: %w", req.SPIFFEID, err)
	}
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{{ID: req.SPIFFEID, Certificates: []*x509.Certificate{leaf}}},
		X509Bundles: x509bundle.NewSet(x509bundle.FromX509Authorities(a.td, []*x509.Certificate{a.cert})),
	}, nil
}
