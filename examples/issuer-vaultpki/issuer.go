package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// info is the plugin's answer to Describe.
var info = sdk.Info{Name: "issuer-vaultpki", Version: "0.1.0"}

// Renewal results, the values of the counter's result label.
const (
	resultSuccess      = "success"
	resultFailure      = "failure"
	resultNotRenewable = "not_renewable"
)

const (
	// minRenewInterval is the floor of the renewal interval, so that a
	// token with a tiny TTL is not renewed in a tight loop.
	minRenewInterval = 5 * time.Second
	// lookupTimeout bounds the lookup-self at Start.
	lookupTimeout = 10 * time.Second
	// renewTimeout bounds one renew-self.
	renewTimeout = 30 * time.Second
)

// issuer is the plugin.
type issuer struct {
	log *slog.Logger
	// after and floor are the loop's timer and its interval floor; tests
	// replace them.
	after func(time.Duration) <-chan time.Time
	floor time.Duration

	mu     sync.RWMutex // guards cfg and client
	cfg    config
	client *vault.Client

	lcMu sync.Mutex // guards stop and done
	stop chan struct{}
	done chan struct{}

	renewals [3]atomic.Int64 // success, failure, not_renewable
	// export is the host's counter service, from Start's context; nil
	// when the host offers none. Guarded by lcMu for writing; read by the
	// loop it starts, which Stop waits for.
	export counterHost
}

// counterHost is the agent's svidagent.host.v1.Metrics/Counter as the SDK's
// host offers it to plugin code.
type counterHost interface {
	Counter(ctx context.Context, name, help string, labels map[string]string, delta float64) error
}

var (
	_ hostapi.Issuer    = (*issuer)(nil)
	_ hostapi.Lifecycle = (*issuer)(nil)
	_ sdk.Configurer    = (*issuer)(nil)
)

func newIssuer(log *slog.Logger) *issuer {
	return &issuer{log: log, after: time.After, floor: minRenewInterval}
}

// Validate implements sdk.Configurer.
func (v *issuer) Validate(b []byte) hostapi.FieldErrors {
	_, es := parseConfig(b)
	return es
}

// Configure implements sdk.Configurer. The Dispatcher stops the renewal
// loop before it and starts it again after it.
func (v *issuer) Configure(_ context.Context, b []byte) error {
	c, es := parseConfig(b)
	if len(es) > 0 {
		return es
	}
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return fmt.Errorf("configuring the vault client: %w", vc.Error)
	}
	vc.Address = c.Address
	vc.MaxRetries = 0 // the agent retries with its own backoff
	if c.CACert != "" {
		if err := vc.ConfigureTLS(&vault.TLSConfig{CACert: c.CACert}); err != nil {
			return fmt.Errorf("configuring vault TLS with %s: %w", c.CACert, err)
		}
	}
	client, err := vault.NewClient(vc)
	if err != nil {
		return fmt.Errorf("creating the vault client: %w", err)
	}
	client.SetToken(c.Token)
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	v.mu.Lock()
	v.cfg, v.client = c, client
	v.mu.Unlock()
	return nil
}

func (v *issuer) current() (config, *vault.Client) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.cfg, v.client
}

// Renewals returns the renewal counter's value for result: "success",
// "failure" or "not_renewable".
func (v *issuer) Renewals(result string) int64 {
	switch result {
	case resultSuccess:
		return v.renewals[0].Load()
	case resultFailure:
		return v.renewals[1].Load()
	case resultNotRenewable:
		return v.renewals[2].Load()
	}
	return 0
}

func (v *issuer) count(result string) {
	if v.export != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := v.export.Counter(ctx, "vault_token_renewals_total", "Vault token renewals by result.",
			map[string]string{"result": result}, 1)
		cancel()
		if err != nil {
			v.log.Debug("exporting the renewal counter", "error", err)
		}
	}
	switch result {
	case resultSuccess:
		v.renewals[0].Add(1)
	case resultFailure:
		v.renewals[1].Add(1)
	case resultNotRenewable:
		v.renewals[2].Add(1)
	}
}

// Start implements hostapi.Lifecycle: it looks the token up and, when the
// token is renewable and expires, starts the renewal loop. A failed lookup
// (an unknown token, Vault unreachable) fails Start, and with it Configure:
// nothing is started.
func (v *issuer) Start(ctx context.Context) error {
	v.lcMu.Lock()
	defer v.lcMu.Unlock()
	if v.done != nil {
		return errors.New("starting the vault token renewal: already running")
	}
	cfg, client := v.current()
	if client == nil {
		return errors.New("starting the vault token renewal: the plugin is not configured")
	}
	v.export, _ = sdk.HostFromContext(ctx).(counterHost)
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	sec, err := client.Auth().Token().LookupSelfWithContext(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("looking up the vault token at %s: %w; check the token and its policies (auth/token/lookup-self)", cfg.Address, err)
	}
	renewable, err := sec.TokenIsRenewable()
	if err != nil {
		return fmt.Errorf("looking up the vault token: reading renewable: %w", err)
	}
	ttl, err := sec.TokenTTL()
	if err != nil {
		return fmt.Errorf("looking up the vault token: reading ttl: %w", err)
	}
	if !renewable {
		v.count(resultNotRenewable)
		v.log.Warn("vault token is not renewable; rotate the token before TTL expires", "ttl", ttl, "address", cfg.Address)
		return nil
	}
	if ttl <= 0 {
		v.log.Info("vault token does not expire; no renewal needed", "address", cfg.Address)
		return nil
	}
	v.stop, v.done = make(chan struct{}), make(chan struct{})
	go v.loop(ctx, client, ttl, v.stop, v.done)
	v.log.Info("vault token renewal started", "ttl", ttl, "interval", v.interval(ttl))
	return nil
}

// Stop implements hostapi.Lifecycle: it blocks until the loop has exited.
// It is safe to call more than once and without Start.
func (v *issuer) Stop() {
	v.lcMu.Lock()
	defer v.lcMu.Unlock()
	if v.done == nil {
		return
	}
	close(v.stop)
	<-v.done
	v.stop, v.done = nil, nil
}

// interval is when to renew a token that has ttl left: half of it, never
// sooner than the floor.
func (v *issuer) interval(ttl time.Duration) time.Duration {
	return max(ttl/2, v.floor)
}

// loop renews the token at half its TTL until stop is closed, ctx is done
// or the token is not renewable any more. ttl is the lifetime the token had
// left at the last successful lookup or renewal.
func (v *issuer) loop(ctx context.Context, client *vault.Client, ttl time.Duration, stop, done chan struct{}) {
	defer close(done)
	for {
		wait := v.interval(ttl)
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-v.after(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, renewTimeout)
		sec, err := client.Auth().Token().RenewSelfWithContext(rctx, 0)
		cancel()
		if ctx.Err() != nil {
			return // stopping, not failing
		}
		if err == nil && (sec == nil || sec.Auth == nil) {
			err = errors.New("the response has no auth block")
		}
		if notRenewable(err) || (err == nil && !sec.Auth.Renewable) {
			v.count(resultNotRenewable)
			v.log.Warn("vault token is not renewable any more; rotate the token before TTL expires; renewal stopped")
			return
		}
		if err != nil {
			v.count(resultFailure)
			// A failed renewal leaves the token with what it had; try
			// again at half of what is left.
			ttl -= wait
			v.log.Error("vault token renewal failed; rotate the token before TTL expires", "error", err, "next_attempt_in", v.interval(ttl))
			continue
		}
		ttl = time.Duration(sec.Auth.LeaseDuration) * time.Second
		v.count(resultSuccess)
		v.log.Debug("vault token renewed", "ttl", ttl, "next_renewal_in", v.interval(ttl))
	}
}

// notRenewable reports whether err is Vault's answer to renewing a token
// that cannot be renewed.
func notRenewable(err error) bool {
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "not renewable") {
			return true
		}
	}
	return false
}

// Issue implements hostapi.Issuer: it signs the request's CSR with the
// role.
func (v *issuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if len(req.JWT) > 0 || req.JWTBundles {
		return nil, sdk.Error(sdk.CodeInvalidArgument, "the vault PKI issuer issues X509-SVIDs only; remove the svid block's jwt blocks and jwt_bundle settings")
	}
	if !req.X509 || len(req.CSR) == 0 {
		return nil, sdk.Error(sdk.CodeInvalidArgument, "the vault PKI issuer needs an X.509 request with a CSR")
	}
	if req.SPIFFEID.IsZero() {
		return nil, sdk.Error(sdk.CodeInvalidArgument, "the vault PKI issuer needs the svid block's spiffe_id")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "parsing the CSR: %v", err)
	}
	cfg, client := v.current()
	if client == nil {
		return nil, sdk.Error(sdk.CodeFailedPrecondition, "the vault PKI issuer is not configured")
	}
	data := map[string]any{
		"csr":                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR})),
		"uri_sans":             req.SPIFFEID.String(),
		"exclude_cn_from_sans": true,
		"format":               "pem",
	}
	ttl := cfg.ttl
	if req.TTL > 0 {
		ttl = req.TTL
	}
	if ttl > 0 {
		data["ttl"] = fmt.Sprintf("%ds", int64(ttl.Round(time.Second)/time.Second))
	}
	p := cfg.Mount + "/sign/" + cfg.Role
	sec, err := client.Logical().WriteWithContext(ctx, p, data)
	if err != nil {
		code := sdk.CodeUnavailable
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
			code = sdk.CodeFailedPrecondition
		}
		return nil, sdk.Errorf(code, "signing the CSR for %s with vault %s: %v", req.SPIFFEID, p, err)
	}
	creds, err := parseSign(sec, req, csr)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "reading vault's answer from %s: %v", p, err)
	}
	return creds, nil
}

// parseSign turns a sign response into credentials and checks them: the
// leaf carries the requested SPIFFE ID and the CSR's key, and the chain
// verifies against the bundle.
func parseSign(sec *vault.Secret, req *hostapi.IssueRequest, csr *x509.CertificateRequest) (*hostapi.Credentials, error) {
	if sec == nil || sec.Data == nil {
		return nil, errors.New("the response has no data")
	}
	str := func(k string) string { s, _ := sec.Data[k].(string); return s }
	leafs, err := parsePEM(str("certificate"))
	if err != nil || len(leafs) == 0 {
		return nil, fmt.Errorf("data.certificate: %v", orEmpty(err))
	}
	var cas []*x509.Certificate
	if chain, ok := sec.Data["ca_chain"].([]any); ok && len(chain) > 0 {
		for i, c := range chain {
			s, _ := c.(string)
			certs, err := parsePEM(s)
			if err != nil {
				return nil, fmt.Errorf("data.ca_chain[%d]: %v", i, err)
			}
			cas = append(cas, certs...)
		}
	} else {
		if cas, err = parsePEM(str("issuing_ca")); err != nil || len(cas) == 0 {
			return nil, fmt.Errorf("data.issuing_ca: %v", orEmpty(err))
		}
	}
	// The chain: the leaf, whatever else "certificate" held, and the CA
	// certificates up to, not including, the root. The bundle: the
	// self-signed certificates of ca_chain or, when Vault's CA is an
	// intermediate whose root it does not know, the topmost certificate.
	chain := append([]*x509.Certificate(nil), leafs...)
	var roots []*x509.Certificate
	for _, c := range cas {
		if isSelfSigned(c) {
			roots = append(roots, c)
		} else if !containsCert(chain, c) {
			chain = append(chain, c)
		}
	}
	if len(roots) == 0 {
		top := chain[len(chain)-1]
		chain = chain[:len(chain)-1]
		roots = append(roots, top)
		if len(chain) == 0 {
			return nil, errors.New("the CA chain is empty")
		}
	}
	leaf := chain[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("the certificate's SPIFFE ID: %w", err)
	}
	if id != req.SPIFFEID {
		return nil, fmt.Errorf("the certificate is for %s, not %s", id, req.SPIFFEID)
	}
	if !publicKeyEqual(leaf.PublicKey, csr.PublicKey) {
		return nil, errors.New("the certificate's public key is not the CSR's")
	}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), roots)
	if _, _, err := x509svid.Verify(chain, bundle); err != nil {
		return nil, fmt.Errorf("verifying the chain against the CA chain's root: %w", err)
	}
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain}},
		X509Bundles: x509bundle.NewSet(bundle),
	}, nil
}

func orEmpty(err error) string {
	if err == nil {
		return "empty"
	}
	return err.Error()
}

func parsePEM(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 && strings.TrimSpace(s) != "" {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.IsCA && c.CheckSignatureFrom(c) == nil
}

func containsCert(cs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range cs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func publicKeyEqual(a, b any) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
