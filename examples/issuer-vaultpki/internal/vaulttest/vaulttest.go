// Package vaulttest is a Vault API test server: a real HTTP server that
// implements, with Vault's request and response shapes, the three endpoints
// the issuer-vaultpki plugin uses:
//
//   - GET  /v1/auth/token/lookup-self
//   - POST /v1/auth/token/renew-self
//   - POST /v1/<mount>/sign/<role> (and PUT, as Vault accepts both)
//
// A real Vault cannot be built from the module proxy (github.com/hashicorp/vault
// replaces its nested sdk and api modules with local directories, and no
// published vault/sdk compiles with it), so the plugin is tested against this
// server. It follows Vault's documented API: the X-Vault-Token header (or
// "Authorization: Bearer"), the response envelope (request_id, lease_id,
// renewable, lease_duration, data, wrap_info, warnings, auth), the token
// fields of lookup-self, the auth block of renew-self, the PKI sign
// response (certificate, issuing_ca, ca_chain, serial_number, expiration),
// and error bodies {"errors":[...]} with Vault's status codes: 403
// "permission denied" for a missing or unknown token, 400 for a bad request
// (an unparsable CSR, an unknown role, a URI SAN the role does not allow, a
// non-renewable lease), 405 for a wrong method, 503 "Vault is sealed".
//
// The PKI mount has a root CA and an intermediate that signs; ca_chain is
// the intermediate then the root, as Vault returns it for an imported chain.
//
//	s := vaulttest.New(t, vaulttest.Options{})
//	s.AddToken(vaulttest.Token{ID: "s.abc", TTL: time.Hour, Renewable: true})
//	s.AddRole("svid", vaulttest.Role{AllowedURISANs: []string{"spiffe://example.org/*"}, MaxTTL: time.Hour})
package vaulttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server.
type Options struct {
	// Mount is the PKI secrets engine's mount path. Default: "pki".
	Mount string
}

// Token is a Vault service token.
type Token struct {
	// ID is the token itself. Required.
	ID string
	// Policies default to ["default"].
	Policies []string
	// TTL is the token's TTL, which each renewal grants again. Zero means
	// no expiry (as a root token).
	TTL time.Duration
	// ExplicitMaxTTL caps renewals, from the token's creation. Zero: none.
	ExplicitMaxTTL time.Duration
	// Renewable is the token's renewable flag.
	Renewable bool
}

// Role is a PKI role.
type Role struct {
	// AllowedURISANs are glob patterns ("*" anywhere) the uri_sans must
	// match. Empty allows none.
	AllowedURISANs []string
	// MaxTTL caps the certificate's TTL. Default: 24h.
	MaxTTL time.Duration
	// TTL is the TTL when the request has none. Default: MaxTTL.
	TTL time.Duration
	// RequireCN is the role's require_cn. The plugin's role must set
	// require_cn=false, since SVIDs carry no common name.
	RequireCN bool
}

// Server is a running Vault API test server. Its methods are safe for
// concurrent use.
type Server struct {
	*httptest.Server
	mount string

	rootCert, intCert *x509.Certificate
	intKey            crypto.Signer

	mu      sync.Mutex
	tokens  map[string]*token
	roles   map[string]Role
	sealed  bool
	counts  map[string]int // by endpoint: "lookup-self", "renew-self", "sign"
	notify  chan string    // each handled endpoint, when the buffer has room
	serial  int64
	demoted map[string]bool // tokens whose next renewal makes them non-renewable
}

type token struct {
	Token
	accessor string
	created  time.Time
	expires  time.Time // zero: never
}

// New starts a server, closed at the end of the test.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Mount == "" {
		o.Mount = "pki"
	}
	s := &Server{
		mount:   strings.Trim(o.Mount, "/"),
		tokens:  map[string]*token{},
		roles:   map[string]Role{},
		counts:  map[string]int{},
		notify:  make(chan string, 1024),
		demoted: map[string]bool{},
	}
	if err := s.mintCAs(); err != nil {
		t.Fatalf("vaulttest: minting the CA: %v", err)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) mintCAs() error {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vaulttest root"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	if s.rootCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	intKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	intTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vaulttest intermediate"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(47 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if der, err = x509.CreateCertificate(rand.Reader, intTmpl, s.rootCert, intKey.Public(), rootKey); err != nil {
		return err
	}
	if s.intCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	s.intKey = intKey
	s.serial = 100
	return nil
}

// Root returns the root CA certificate.
func (s *Server) Root() *x509.Certificate { return s.rootCert }

// Intermediate returns the CA certificate that signs.
func (s *Server) Intermediate() *x509.Certificate { return s.intCert }

// AddToken adds (or replaces) a token, created now.
func (s *Server) AddToken(tk Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(tk.Policies) == 0 {
		tk.Policies = []string{"default"}
	}
	now := time.Now()
	t := &token{Token: tk, accessor: randomID(), created: now}
	if tk.TTL > 0 {
		t.expires = now.Add(tk.TTL)
	}
	s.tokens[tk.ID] = t
}

// SetTokenTTL changes the TTL that the token's next renewals grant.
func (s *Server) SetTokenTTL(id string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[id]; t != nil {
		t.TTL = ttl
	}
}

// SetRenewable sets the token's renewable flag: renewing a non-renewable
// token is Vault's 400 "lease is not renewable".
func (s *Server) SetRenewable(id string, renewable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[id]; t != nil {
		t.Renewable = renewable
	}
}

// DemoteOnNextRenewal makes the token's next successful renewal its last:
// the renewal answers auth.renewable=false and the token is non-renewable
// from then on. It stands for a token reaching the end of what renewals may
// grant; a test knob, not a Vault endpoint.
func (s *Server) DemoteOnNextRenewal(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.demoted[id] = true
}

// RevokeToken removes a token: every later call with it is 403.
func (s *Server) RevokeToken(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, id)
}

// AddRole adds (or replaces) a PKI role.
func (s *Server) AddRole(name string, r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.MaxTTL == 0 {
		r.MaxTTL = 24 * time.Hour
	}
	if r.TTL == 0 {
		r.TTL = r.MaxTTL
	}
	s.roles[name] = r
}

// Seal seals (true) or unseals the server: a sealed Vault answers every
// request 503 "Vault is sealed".
func (s *Server) Seal(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// Count returns how many requests an endpoint ("lookup-self", "renew-self",
// "sign") answered, successfully or not.
func (s *Server) Count(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// Handled receives the endpoint of each request once it is answered (up to
// 1024 not yet received).
func (s *Server) Handled() <-chan string { return s.notify }

// envelope is Vault's response body.
type envelope struct {
	RequestID     string   `json:"request_id"`
	LeaseID       string   `json:"lease_id"`
	Renewable     bool     `json:"renewable"`
	LeaseDuration int      `json:"lease_duration"`
	Data          any      `json:"data"`
	WrapInfo      any      `json:"wrap_info"`
	Warnings      []string `json:"warnings"`
	Auth          *auth    `json:"auth"`
	MountType     string   `json:"mount_type"`
}

type auth struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int               `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint := ""
	p := path.Clean(r.URL.Path)
	switch {
	case p == "/v1/auth/token/lookup-self":
		endpoint = "lookup-self"
	case p == "/v1/auth/token/renew-self":
		endpoint = "renew-self"
	case strings.HasPrefix(p, "/v1/"+s.mount+"/sign/"):
		endpoint = "sign"
	}
	defer func() {
		if endpoint == "" {
			return
		}
		select {
		case s.notify <- endpoint:
		default:
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if endpoint != "" {
		s.counts[endpoint]++
	}
	if s.sealed {
		writeErr(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	tk := s.authenticate(r)
	if tk == nil {
		// Vault answers an unauthenticated request on any authenticated
		// path, known or not, with 403.
		writeErr(w, http.StatusForbidden, "permission denied")
		return
	}
	switch endpoint {
	case "lookup-self":
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			writeErr(w, http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		s.lookupSelf(w, tk)
	case "renew-self":
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			writeErr(w, http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		s.renewSelf(w, r, tk)
	case "sign":
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			writeErr(w, http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		s.sign(w, r, strings.TrimPrefix(p, "/v1/"+s.mount+"/sign/"))
	default:
		// A path no mount serves, or one the token's policies do not
		// grant: Vault says 403 to a token without access.
		writeErr(w, http.StatusForbidden, "permission denied")
	}
}

// authenticate returns the request's live token, or nil.
func (s *Server) authenticate(r *http.Request) *token {
	id := r.Header.Get("X-Vault-Token")
	if id == "" {
		id, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	t := s.tokens[id]
	if t == nil {
		return nil
	}
	if !t.expires.IsZero() && !time.Now().Before(t.expires) {
		delete(s.tokens, id) // expired tokens are revoked
		return nil
	}
	return t
}

func (s *Server) lookupSelf(w http.ResponseWriter, t *token) {
	ttl := 0
	var expire any
	if !t.expires.IsZero() {
		ttl = int(time.Until(t.expires).Round(time.Second) / time.Second)
		expire = t.expires.Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, envelope{
		RequestID: randomUUID(),
		Data: map[string]any{
			"accessor":         t.accessor,
			"creation_time":    t.created.Unix(),
			"creation_ttl":     int(t.TTL / time.Second),
			"display_name":     "token",
			"entity_id":        "",
			"expire_time":      expire,
			"explicit_max_ttl": int(t.ExplicitMaxTTL / time.Second),
			"id":               t.ID,
			"issue_time":       t.created.Format(time.RFC3339Nano),
			"meta":             nil,
			"num_uses":         0,
			"orphan":           false,
			"path":             "auth/token/create",
			"policies":         t.Policies,
			"renewable":        t.Renewable,
			"ttl":              ttl,
			"type":             "service",
		},
	})
}

func (s *Server) renewSelf(w http.ResponseWriter, r *http.Request, t *token) {
	var body struct {
		Increment any `json:"increment"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeErr(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	}
	if !t.Renewable {
		writeErr(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	if t.TTL == 0 {
		writeErr(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	grant := t.TTL
	if inc, ok := parseSeconds(body.Increment); ok && inc > 0 {
		grant = inc
	}
	var warnings []string
	if t.ExplicitMaxTTL > 0 {
		if left := time.Until(t.created.Add(t.ExplicitMaxTTL)).Truncate(time.Second); grant > left {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", grant, left))
			grant = left
		}
	}
	t.expires = time.Now().Add(grant)
	if s.demoted[t.ID] {
		delete(s.demoted, t.ID)
		t.Renewable = false
	}
	writeJSON(w, http.StatusOK, envelope{
		RequestID: randomUUID(),
		Warnings:  warnings,
		Auth: &auth{
			ClientToken: t.ID, Accessor: t.accessor, Policies: t.Policies, TokenPolicies: t.Policies,
			LeaseDuration: int(grant / time.Second), Renewable: t.Renewable, TokenType: "service",
		},
	})
}

// parseSeconds reads a Vault duration: a number of seconds, or a string
// with a unit ("1h") or without one ("3600").
func parseSeconds(v any) (time.Duration, bool) {
	switch v := v.(type) {
	case float64:
		return time.Duration(v) * time.Second, true
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return time.Duration(n) * time.Second, true
		}
		d, err := time.ParseDuration(v)
		return d, err == nil
	}
	return 0, false
}

func (s *Server) sign(w http.ResponseWriter, r *http.Request, roleName string) {
	var req struct {
		CSR        string `json:"csr"`
		CommonName string `json:"common_name"`
		URISANs    any    `json:"uri_sans"`
		TTL        any    `json:"ttl"`
		Format     string `json:"format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	role, ok := s.roles[roleName]
	if !ok {
		writeErr(w, http.StatusBadRequest, "unknown role: "+roleName)
		return
	}
	if req.CSR == "" {
		writeErr(w, http.StatusBadRequest, "\"csr\" is empty")
		return
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil {
		writeErr(w, http.StatusBadRequest, "csr contains no data")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		writeErr(w, http.StatusBadRequest, "certificate request could not be parsed")
		return
	}
	if role.RequireCN && req.CommonName == "" && csr.Subject.CommonName == "" {
		writeErr(w, http.StatusBadRequest, `the common_name field is required, or must be provided in a CSR with "use_csr_common_name" set to true, unless "require_cn" is set to false`)
		return
	}
	var sans []string
	switch v := req.URISANs.(type) {
	case string:
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				sans = append(sans, u)
			}
		}
	case []any:
		for _, u := range v {
			if s, ok := u.(string); ok {
				sans = append(sans, s)
			}
		}
	}
	for _, u := range csr.URIs { // use_csr_sans defaults to true for sign
		sans = append(sans, u.String())
	}
	var uris []*url.URL
	seen := map[string]bool{}
	for _, san := range sans {
		if seen[san] {
			continue
		}
		seen[san] = true
		if !globAny(role.AllowedURISANs, san) {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("URI Subject Alternative Names (%s) are not allowed by this role", san))
			return
		}
		u, err := url.Parse(san)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("error parsing URI: %v", err))
			return
		}
		uris = append(uris, u)
	}
	ttl := role.TTL
	if d, ok := parseSeconds(req.TTL); ok && d > 0 {
		ttl = d
	}
	var warnings []string
	if ttl > role.MaxTTL {
		warnings = append(warnings, fmt.Sprintf("TTL %q is longer than permitted maxTTL %q, so maxTTL is being used", ttl, role.MaxTTL))
		ttl = role.MaxTTL
	}
	s.serial++
	now := time.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(s.intCert.NotAfter) {
		notAfter = s.intCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(s.serial),
		Subject:      pkix.Name{CommonName: req.CommonName},
		NotBefore:    now.Add(-30 * time.Second), // Vault's not_before_duration default
		NotAfter:     notAfter,
		URIs:         uris,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.intCert, csr.PublicKey, s.intKey)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "error signing certificate: "+err.Error())
		return
	}
	leaf, _ := x509.ParseCertificate(der)
	writeJSON(w, http.StatusOK, envelope{
		RequestID: randomUUID(),
		Warnings:  warnings,
		MountType: "pki",
		Data: map[string]any{
			"certificate":   pemOf(der),
			"issuing_ca":    pemOf(s.intCert.Raw),
			"ca_chain":      []string{pemOf(s.intCert.Raw), pemOf(s.rootCert.Raw)},
			"serial_number": serialString(leaf.SerialNumber),
			"expiration":    notAfter.Unix(),
		},
	})
}

func globAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ReplaceAll(p, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00")); ok {
			return true
		}
	}
	return false
}

func pemOf(der []byte) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// serialString formats a serial as Vault does: colon-separated hex pairs.
func serialString(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string][]string{"errors": {msg}})
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
