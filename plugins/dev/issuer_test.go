package dev_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/plugins/dev"
)

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	web = spiffeid.RequireFromPath(td, "/web")
)

func newCSR(t testing.TB) (crypto.Signer, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

func newIssuer(t testing.TB, cfg *dev.Config) *dev.Issuer {
	t.Helper()
	iss, err := dev.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*dev.Config)
		want   map[string]string // field → message substring
	}{
		{name: "defaults", mutate: func(*dev.Config) {}},
		{name: "bad trust domain", mutate: func(c *dev.Config) { c.TrustDomain = "Example.ORG" }, want: map[string]string{"trust_domain": "such as \"example.org\""}},
		{name: "empty trust domain", mutate: func(c *dev.Config) { c.TrustDomain = "" }, want: map[string]string{"trust_domain": "not a valid trust domain"}},
		{name: "ttl not a duration", mutate: func(c *dev.Config) { c.TTL = "1 minute" }, want: map[string]string{"ttl": "write it like \"1m\""}},
		{name: "ttl zero", mutate: func(c *dev.Config) { c.TTL = "0s" }, want: map[string]string{"ttl": "not positive"}},
		{name: "ca_ttl negative", mutate: func(c *dev.Config) { c.CATTL = "-1h" }, want: map[string]string{"ca_ttl": "not positive"}},
		{name: "ca_ttl not longer than ttl", mutate: func(c *dev.Config) { c.TTL = "2h"; c.CATTL = "2h" }, want: map[string]string{"ca_ttl": "must be longer than ttl"}},
		{name: "several", mutate: func(c *dev.Config) { c.TrustDomain = "a b"; c.TTL = "x"; c.CATTL = "y" }, want: map[string]string{"trust_domain": "", "ttl": "", "ca_ttl": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := dev.DefaultConfig()
			tt.mutate(cfg)
			err := cfg.Validate()
			fes := hostapi.AsFieldErrors(err)
			if len(fes) != len(tt.want) {
				t.Fatalf("Validate() = %v, want errors on %v", err, tt.want)
			}
			for _, fe := range fes {
				sub, ok := tt.want[fe.Field]
				if !ok || !strings.Contains(fe.Message, sub) {
					t.Errorf("field error %s: %q, want one containing %q", fe.Field, fe.Message, sub)
				}
			}
			if _, nerr := dev.New(cfg, nil); (nerr != nil) != (err != nil) {
				t.Errorf("New() error = %v, Validate() = %v", nerr, err)
			}
		})
	}
}

func TestWarnsAtNew(t *testing.T) {
	var buf bytes.Buffer
	if _, err := dev.New(dev.DefaultConfig(), slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "not for production") {
		t.Errorf("log = %q, want a WARN saying not for production", out)
	}
}

func TestIssueX509(t *testing.T) {
	iss := newIssuer(t, dev.DefaultConfig())
	tests := []struct {
		name    string
		ttl     time.Duration
		wantTTL time.Duration
	}{
		{name: "configured ttl", wantTTL: time.Minute},
		{name: "requested ttl", ttl: 10 * time.Minute, wantTTL: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, csr := newCSR(t)
			before := time.Now().Truncate(time.Second)
			creds, err := iss.Issue(t.Context(), &hostapi.IssueRequest{SPIFFEID: web, X509: true, CSR: csr, TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			if len(creds.X509SVIDs) != 1 || creds.X509Bundles == nil {
				t.Fatalf("credentials = %+v", creds)
			}
			svid := creds.X509SVIDs[0]
			if svid.PrivateKey != nil {
				t.Error("PrivateKey is set; the core attaches its own")
			}
			id, _, err := x509svid.Verify(svid.Certificates, creds.X509Bundles)
			if err != nil {
				t.Fatalf("verifying against the returned bundle: %v", err)
			}
			if id != web || svid.ID != web {
				t.Errorf("ID = %s (verified %s), want %s", svid.ID, id, web)
			}
			leaf := svid.Certificates[0]
			if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
				t.Error("leaf public key differs from the CSR's")
			}
			if life := leaf.NotAfter.Sub(before); life < tt.wantTTL || life > tt.wantTTL+2*time.Second {
				t.Errorf("leaf lives %s from issue, want %s", life, tt.wantTTL)
			}
			if leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %x is not random-looking", leaf.SerialNumber)
			}
			if len(leaf.ExtKeyUsage) != 2 || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
				t.Errorf("key usage = %v / %v", leaf.KeyUsage, leaf.ExtKeyUsage)
			}
			// With the core's key attached, the SVID is complete.
			svid.PrivateKey = key
			certs, pkey, err := svid.MarshalRaw()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := x509svid.ParseRaw(certs, pkey); err != nil {
				t.Errorf("parsing the completed SVID: %v", err)
			}
		})
	}
}

func TestIssueJWT(t *testing.T) {
	iss := newIssuer(t, dev.DefaultConfig())
	jr := hostapi.JWTRequest{Audience: "a", ExtraAudiences: []string{"b", "c"}, FileName: "t"}
	creds, err := iss.Issue(t.Context(), &hostapi.IssueRequest{SPIFFEID: web, TTL: 5 * time.Minute, JWT: []hostapi.JWTRequest{jr, {Audience: "solo"}}})
	if err != nil {
		t.Fatal(err)
	}
	if creds.X509SVIDs != nil || creds.X509Bundles != nil {
		t.Error("a JWT-only request returned X.509 parts")
	}
	if creds.JWTBundles == nil || len(creds.JWTSVIDs) != 2 {
		t.Fatalf("credentials = %+v", creds)
	}
	got, err := jwtsvid.ParseAndValidate(creds.JWTSVIDs[0].SVID.Marshal(), creds.JWTBundles, []string{"a", "b", "c"})
	if err != nil {
		t.Fatalf("validating against the returned bundle: %v", err)
	}
	if got.ID != web || fmt.Sprint(got.Audience) != "[a b c]" {
		t.Errorf("JWT-SVID = %s %v, want %s [a b c]", got.ID, got.Audience, web)
	}
	if d := time.Until(got.Expiry); d > 5*time.Minute || d < 5*time.Minute-5*time.Second {
		t.Errorf("expires in %s, want 5m", d)
	}
	if _, ok := got.Claims["iat"]; !ok {
		t.Error("no iat claim")
	}
	if creds.JWTSVIDs[0].Request.Key() != jr.Key() || creds.JWTSVIDs[1].SVID.Audience[0] != "solo" {
		t.Errorf("JWT-SVIDs do not answer their requests in order")
	}
	other := newIssuer(t, dev.DefaultConfig())
	oc, err := other.Issue(t.Context(), &hostapi.IssueRequest{SPIFFEID: web, JWTBundles: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwtsvid.ParseAndValidate(creds.JWTSVIDs[0].SVID.Marshal(), oc.JWTBundles, []string{"a"}); err == nil {
		t.Error("a token validated against another issuer's bundle")
	}
}

func TestIssueErrors(t *testing.T) {
	iss := newIssuer(t, dev.DefaultConfig())
	_, csr := newCSR(t)
	tampered := bytes.Clone(csr)
	tampered[len(tampered)-5] ^= 0xff
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		req  *hostapi.IssueRequest
		want string
	}{
		{name: "nil request", req: nil, want: "nil request"},
		{name: "no ID", req: &hostapi.IssueRequest{X509: true, CSR: csr}, want: "set spiffe_id"},
		{name: "foreign trust domain", req: &hostapi.IssueRequest{SPIFFEID: spiffeid.RequireFromString("spiffe://other.org/web"), X509: true, CSR: csr}, want: `outside its trust domain "example.org"`},
		{name: "no CSR", req: &hostapi.IssueRequest{SPIFFEID: web, X509: true}, want: "no CSR"},
		{name: "garbage CSR", req: &hostapi.IssueRequest{SPIFFEID: web, X509: true, CSR: []byte("junk")}, want: "parsing the CSR"},
		{name: "bad CSR signature", req: &hostapi.IssueRequest{SPIFFEID: web, X509: true, CSR: tampered}, want: "CSR"},
		{name: "ttl beyond CA", req: &hostapi.IssueRequest{SPIFFEID: web, X509: true, CSR: csr, TTL: 48 * time.Hour}, want: "raise ca_ttl"},
		{name: "JWT without audience", req: &hostapi.IssueRequest{SPIFFEID: web, JWT: []hostapi.JWTRequest{{}}}, want: "no audience"},
		{name: "cancelled", ctx: cancelled, req: &hostapi.IssueRequest{SPIFFEID: web, X509: true, CSR: csr}, want: "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := iss.Issue(ctx, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Issue() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestCARotation moves the clock past the CA's lifetime: the CA rotates,
// the bundle keeps the old root while it lives, and every leaf verifies.
func TestCARotation(t *testing.T) {
	cfg := &dev.Config{TrustDomain: "example.org", TTL: "1m", CATTL: "10m"}
	iss := newIssuer(t, cfg)
	var now atomic.Pointer[time.Time]
	set := func(tm time.Time) { now.Store(&tm) }
	start := time.Now()
	set(start)
	dev.SetClock(iss, func() time.Time { return *now.Load() })

	issue := func() (*x509.Certificate, int, error) {
		_, csr := newCSR(t)
		creds, err := iss.Issue(t.Context(), &hostapi.IssueRequest{SPIFFEID: web, X509: true, CSR: csr})
		if err != nil {
			return nil, 0, err
		}
		b, _ := creds.X509Bundles.Get(td)
		_, _, err = x509svid.Verify(creds.X509SVIDs[0].Certificates, creds.X509Bundles, x509svid.WithTime(*now.Load()))
		return creds.X509SVIDs[0].Certificates[0], len(b.X509Authorities()), err
	}
	first, roots, err := issue()
	if err != nil || roots != 1 {
		t.Fatalf("first issue: roots %d, err %v", roots, err)
	}
	set(start.Add(9*time.Minute + 30*time.Second)) // a 1m leaf would outlive the CA
	second, roots, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	if roots != 2 || bytes.Equal(first.AuthorityKeyId, second.AuthorityKeyId) {
		t.Errorf("after rotation: %d roots, same signer %v; want 2 roots and a new signer", roots, bytes.Equal(first.AuthorityKeyId, second.AuthorityKeyId))
	}
	set(start.Add(11 * time.Minute)) // the first root has expired
	if _, roots, err = issue(); err != nil || roots != 1 {
		t.Errorf("after the old root expired: %d roots, err %v; want 1", roots, err)
	}
}

// TestHammer issues concurrently, across CA rotations, under -race.
func TestHammer(t *testing.T) {
	iss := newIssuer(t, &dev.Config{TrustDomain: "example.org", TTL: "1m", CATTL: "2m"})
	var clock atomic.Int64
	start := time.Now()
	dev.SetClock(iss, func() time.Time { return start.Add(time.Duration(clock.Load())) })
	_, csr := newCSR(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			for n := range 25 {
				if g == 0 {
					clock.Add(int64(30 * time.Second))
				}
				creds, err := iss.Issue(context.Background(), &hostapi.IssueRequest{SPIFFEID: spiffeid.RequireFromPathf(td, "/w/%d/%d", g, n), X509: true, CSR: csr, JWTBundles: true})
				if err != nil {
					errs <- err
					return
				}
				// Verify at the time of issue (NotBefore is backdated 10s):
				// other goroutines move the clock meanwhile.
				issued := creds.X509SVIDs[0].Certificates[0].NotBefore.Add(10 * time.Second)
				if _, _, err := x509svid.Verify(creds.X509SVIDs[0].Certificates, creds.X509Bundles, x509svid.WithTime(issued)); err != nil {
					errs <- fmt.Errorf("verifying: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRegistered(t *testing.T) {
	m, ok := registry.Lookup(hostapi.KindIssuer, "dev")
	if !ok {
		t.Fatal("issuer.dev is not registered")
	}
	cfg := m.NewConfig().(*dev.Config)
	if *cfg != *dev.DefaultConfig() {
		t.Errorf("NewConfig() = %+v, want the defaults", cfg)
	}
	inst, err := m.New(cfg, registry.Env{Logger: slog.New(slog.DiscardHandler), Name: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inst.(hostapi.Issuer); !ok {
		t.Fatalf("issuer.dev built a %T, not a hostapi.Issuer", inst)
	}
}
