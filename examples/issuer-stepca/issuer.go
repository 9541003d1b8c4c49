package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// info is the plugin's answer to Describe.
var info = sdk.Info{Name: "issuer-stepca", Version: "0.1.0"}

// ottLifetime is how long a one-time token is valid.
const ottLifetime = 5 * time.Minute

// config is the plugin's config {} block.
type config struct {
	// CAURL is step-ca's URL, e.g. "https://ca.example.org:9000". Required.
	CAURL string `json:"ca_url"`
	// Root is a PEM file with step-ca's root certificate: it verifies
	// step-ca's TLS certificate and the issued chains, and is the trust
	// bundle handed to the writers. Required.
	Root string `json:"root"`
	// Provisioner is the JWK provisioner's name. Required.
	Provisioner string `json:"provisioner"`
	// ProvisionerKeyFile is a JSON file with the provisioner's private JWK
	// (with its "kid"). Required.
	ProvisionerKeyFile string `json:"provisioner_key_file"`
	// TTL is the certificate lifetime asked for when the svid block sets
	// none. Default: the provisioner's default.
	TTL string `json:"ttl"`
}

// state is what Configure builds from a config.
type state struct {
	caURL       string
	provisioner string
	root        *x509.Certificate
	rootSHA     string
	signer      jose.Signer
	client      *http.Client
	ttl         time.Duration
}

// issuer is the plugin.
type issuer struct {
	mu sync.RWMutex
	st *state
}

var (
	_ hostapi.Issuer = (*issuer)(nil)
	_ sdk.Configurer = (*issuer)(nil)
)

// load decodes b strictly and builds the state, reporting every problem
// against its field.
func load(b []byte) (*state, hostapi.FieldErrors) {
	var (
		c   config
		es  hostapi.FieldErrors
		raw map[string]json.RawMessage
	)
	if err := json.Unmarshal(b, &raw); err != nil {
		es.Add("", "the config must be a JSON object: "+err.Error())
		return nil, es
	}
	fields := map[string]*string{
		"ca_url": &c.CAURL, "root": &c.Root, "provisioner": &c.Provisioner,
		"provisioner_key_file": &c.ProvisionerKeyFile, "ttl": &c.TTL,
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := fields[k]
		if !ok {
			es.Add(k, "unknown attribute; the step-ca issuer takes ca_url, root, provisioner, provisioner_key_file and ttl")
			continue
		}
		if err := json.Unmarshal(raw[k], p); err != nil {
			es.Add(k, "must be a string")
		}
	}
	st := &state{provisioner: c.Provisioner}
	if u, err := url.Parse(c.CAURL); c.CAURL == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		es.Add("ca_url", `required: step-ca's https URL, e.g. "https://ca.example.org:9000"`)
	} else {
		st.caURL = strings.TrimRight(c.CAURL, "/")
	}
	if c.Root == "" {
		es.Add("root", "required: a PEM file with step-ca's root certificate")
	} else if pb, err := os.ReadFile(c.Root); err != nil {
		es.Add("root", "reading the root: "+err.Error())
	} else if blk, _ := pem.Decode(pb); blk == nil || blk.Type != "CERTIFICATE" {
		es.Add("root", c.Root+" holds no PEM certificate")
	} else if st.root, err = x509.ParseCertificate(blk.Bytes); err != nil {
		es.Add("root", "parsing the root: "+err.Error())
	} else {
		sum := sha256.Sum256(st.root.Raw)
		st.rootSHA = hex.EncodeToString(sum[:])
	}
	if c.Provisioner == "" {
		es.Add("provisioner", "required: the name of step-ca's JWK provisioner")
	}
	if c.ProvisionerKeyFile == "" {
		es.Add("provisioner_key_file", "required: a file with the JWK provisioner's private key, as JSON")
	} else if kb, err := os.ReadFile(c.ProvisionerKeyFile); err != nil {
		es.Add("provisioner_key_file", "reading the key: "+err.Error())
	} else {
		var jwk jose.JSONWebKey
		switch err := jwk.UnmarshalJSON(kb); {
		case err != nil:
			es.Add("provisioner_key_file", "parsing the JWK: "+err.Error())
		case jwk.IsPublic():
			es.Add("provisioner_key_file", "the JWK is a public key; the issuer needs the private key")
		case jwk.KeyID == "":
			es.Add("provisioner_key_file", `the JWK has no "kid"; step-ca finds the provisioner by it`)
		default:
			alg := jose.SignatureAlgorithm(jwk.Algorithm)
			if alg == "" {
				alg = jose.ES256
			}
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk},
				(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", jwk.KeyID))
			if err != nil {
				es.Add("provisioner_key_file", "making a signer: "+err.Error())
			}
			st.signer = s
		}
	}
	if c.TTL != "" {
		d, err := time.ParseDuration(c.TTL)
		if err != nil || d <= 0 {
			es.Add("ttl", fmt.Sprintf("%q is not a positive duration such as \"1h\"", c.TTL))
		}
		st.ttl = d
	}
	if len(es) > 0 {
		return nil, es
	}
	pool := x509.NewCertPool()
	pool.AddCert(st.root)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	st.client = &http.Client{Transport: tr}
	return st, nil
}

// Validate implements sdk.Configurer.
func (s *issuer) Validate(b []byte) hostapi.FieldErrors {
	_, es := load(b)
	return es
}

// Configure implements sdk.Configurer.
func (s *issuer) Configure(_ context.Context, b []byte) error {
	st, es := load(b)
	if len(es) > 0 {
		return es
	}
	s.mu.Lock()
	old := s.st
	s.st = st
	s.mu.Unlock()
	if old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// Close releases the HTTP connections.
func (s *issuer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		s.st.client.CloseIdleConnections()
	}
	return nil
}

// ottClaims are the claims of a JWK provisioner's one-time token.
type ottClaims struct {
	jwt.Claims
	SANs []string `json:"sans"`
	SHA  string   `json:"sha"`
}

// token signs a one-time token for subject and sans.
func (st *state) token(subject string, sans []string, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	c := ottClaims{
		Claims: jwt.Claims{
			Issuer:    st.provisioner,
			Subject:   subject,
			Audience:  jwt.Audience{st.caURL + "/1.0/sign"},
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(now.Add(ottLifetime)),
			ID:        hex.EncodeToString(jti),
		},
		SANs: sans,
		SHA:  st.rootSHA,
	}
	return jwt.Signed(st.signer).Claims(c).Serialize()
}

// signRequest and signResponse are step-ca's /1.0/sign bodies.
type signRequest struct {
	CSR      string `json:"csr"`
	OTT      string `json:"ott"`
	NotAfter string `json:"notAfter,omitempty"`
}

type signResponse struct {
	CRT       string   `json:"crt"`
	CA        string   `json:"ca"`
	CertChain []string `json:"certChain"`
}

// Issue implements hostapi.Issuer.
func (s *issuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if len(req.JWT) > 0 || req.JWTBundles {
		return nil, sdk.Error(sdk.CodeInvalidArgument, "the step-ca issuer issues X509-SVIDs only; remove the svid block's jwt blocks and jwt_bundle settings")
	}
	if !req.X509 || len(req.CSR) == 0 {
		return nil, sdk.Error(sdk.CodeInvalidArgument, "the step-ca issuer needs an X.509 request with a CSR")
	}
	if req.SPIFFEID.IsZero() {
		return nil, sdk.Error(sdk.CodeInvalidArgument, "the step-ca issuer needs the svid block's spiffe_id")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "parsing the CSR: %v", err)
	}
	s.mu.RLock()
	st := s.st
	s.mu.RUnlock()
	if st == nil {
		return nil, sdk.Error(sdk.CodeFailedPrecondition, "the step-ca issuer is not configured")
	}
	id := req.SPIFFEID.String()
	ott, err := st.token(id, []string{id}, time.Now())
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "signing the one-time token: %v", err)
	}
	body := signRequest{
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR})),
		OTT: ott,
	}
	ttl := st.ttl
	if req.TTL > 0 {
		ttl = req.TTL
	}
	if ttl > 0 {
		body.NotAfter = ttl.String()
	}
	b, _ := json.Marshal(body)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, st.caURL+"/1.0/sign", bytes.NewReader(b))
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "making the sign request: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := st.client.Do(hreq)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "signing the CSR for %s with step-ca at %s: %v", id, st.caURL, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "reading step-ca's answer: %v", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(rb))
		if json.Unmarshal(rb, &e) == nil && e.Message != "" {
			msg = e.Message
		}
		code := sdk.CodeUnavailable
		if resp.StatusCode/100 == 4 {
			code = sdk.CodeFailedPrecondition
		}
		return nil, sdk.Errorf(code, "signing the CSR for %s with step-ca at %s: %s: %s", id, st.caURL, resp.Status, msg)
	}
	var sr signResponse
	if err := json.Unmarshal(rb, &sr); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "decoding step-ca's answer: %v", err)
	}
	creds, err := st.credentials(&sr, req, csr)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "checking step-ca's answer: %v", err)
	}
	return creds, nil
}

// credentials checks a sign response and turns it into credentials.
func (st *state) credentials(sr *signResponse, req *hostapi.IssueRequest, csr *x509.CertificateRequest) (*hostapi.Credentials, error) {
	pems := sr.CertChain
	if len(pems) == 0 {
		pems = []string{sr.CRT, sr.CA}
	}
	var chain []*x509.Certificate
	for i, p := range pems {
		rest := []byte(p)
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", i, err)
			}
			if !c.Equal(st.root) { // the root goes in the bundle, not the chain
				chain = append(chain, c)
			}
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("no certificate in the answer")
	}
	leaf := chain[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("the certificate's SPIFFE ID: %w", err)
	}
	if id != req.SPIFFEID {
		return nil, fmt.Errorf("the certificate is for %s, not %s", id, req.SPIFFEID)
	}
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(csr.PublicKey) {
		return nil, errors.New("the certificate's public key is not the CSR's")
	}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), []*x509.Certificate{st.root})
	if _, _, err := x509svid.Verify(chain, bundle); err != nil {
		return nil, fmt.Errorf("verifying the chain against the configured root: %w", err)
	}
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain}},
		X509Bundles: x509bundle.NewSet(bundle),
	}, nil
}
