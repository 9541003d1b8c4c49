//go:build !wasip1

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

var (
	validConfig   = []byte(`{"trust_domain":"example.org"}`)
	invalidConfig = []byte(`{"trust_domain":"not a trust domain"}`)
)

// TestConformanceInProcess runs the suite over the plugin in this process:
// fast, and what to run while editing. BackendDown flips every instance
// the suite opened to "down".
func TestConformanceInProcess(t *testing.T) {
	var (
		mu        sync.Mutex
		instances []*issuer
	)
	conformance.Run(t, conformance.Target{
		Kind: hostapi.KindIssuer,
		NewImpl: func() any {
			i := &issuer{}
			mu.Lock()
			instances = append(instances, i)
			mu.Unlock()
			return i
		},
		// No ConfigJSON: the suite runs with info.ExampleConfigJSON, as
		// `svidagent conformance` does without -config.
		Info:              info,
		InvalidConfigJSON: invalidConfig,
		SPIFFEID:          "spiffe://example.org/conformance",
		TTL:               5 * time.Minute,
		BackendDown: func() {
			mu.Lock()
			defer mu.Unlock()
			for _, i := range instances {
				i.setBackendDown(true)
			}
		},
	})
}

// TestConformanceBuilt builds the plugin as it ships, a .wasm module and a
// go-plugin executable, and runs the suite over both. A built plugin has
// no backend to stop from outside, so issue_backend_down is skipped there;
// TestBackendDown covers the switch.
func TestConformanceBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin twice; run without -short")
	}
	dir := t.TempDir()
	goBin := goCommand()
	for _, b := range []struct {
		out  string
		args []string
		env  []string
	}{
		{"issuer.wasm", []string{"-buildmode=c-shared"}, []string{"GOOS=wasip1", "GOARCH=wasm"}},
		{"issuer", nil, nil},
	} {
		cmd := exec.Command(goBin, append(append([]string{"build"}, b.args...), "-o", filepath.Join(dir, b.out), ".")...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.out, err, out)
		}
		t.Run(b.out, func(t *testing.T) {
			conformance.Run(t, conformance.Target{
				Kind:              hostapi.KindIssuer,
				Path:              filepath.Join(dir, b.out),
				ConfigJSON:        validConfig,
				InvalidConfigJSON: invalidConfig,
				TTL:               5 * time.Minute,
			})
		})
	}
}

// request returns an IssueRequest for id with a fresh key's CSR.
func request(t *testing.T, id string, ttl time.Duration) (*hostapi.IssueRequest, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sid := spiffeid.RequireFromString(id)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{sid.URL()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &hostapi.IssueRequest{SPIFFEID: sid, X509: true, CSR: csr, TTL: ttl}, key
}

func configured(t *testing.T, config string) *issuer {
	t.Helper()
	i := &issuer{}
	if err := i.Configure(context.Background(), []byte(config)); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	return i
}

func TestIssue(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		config   string
		id       string
		ttl      time.Duration
		mutate   func(*hostapi.IssueRequest)
		wantCode sdk.Code
		wantTTL  time.Duration // with wantCode OK
	}{
		{name: "requested TTL", config: `{"trust_domain":"example.org"}`, id: "spiffe://example.org/web", ttl: 10 * time.Minute, wantTTL: 10 * time.Minute},
		{name: "default TTL", config: `{"trust_domain":"example.org","default_ttl":"2h"}`, id: "spiffe://example.org/web", wantTTL: 2 * time.Hour},
		{name: "TTL capped by the CA", config: `{"trust_domain":"example.org"}`, id: "spiffe://example.org/web", ttl: 30 * 24 * time.Hour, wantTTL: caLifetime},
		{name: "other trust domain", config: `{"trust_domain":"example.org"}`, id: "spiffe://other.org/web", wantCode: sdk.CodeInvalidArgument},
		{name: "backend down", config: `{"trust_domain":"example.org","backend_down":true}`, id: "spiffe://example.org/web", wantCode: sdk.CodeUnavailable},
		{name: "garbage CSR", config: `{"trust_domain":"example.org"}`, id: "spiffe://example.org/web",
			mutate: func(r *hostapi.IssueRequest) { r.CSR = []byte("not a CSR") }, wantCode: sdk.CodeInvalidArgument},
		{name: "JWT asked for", config: `{"trust_domain":"example.org"}`, id: "spiffe://example.org/web",
			mutate: func(r *hostapi.IssueRequest) { r.JWT = []hostapi.JWTRequest{{Audience: "a", FileName: "a.jwt"}} }, wantCode: sdk.CodeUnimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := configured(t, tc.config)
			req, key := request(t, tc.id, tc.ttl)
			if tc.mutate != nil {
				tc.mutate(req)
			}
			start := time.Now()
			creds, err := i.Issue(ctx, req)
			if got := sdk.CodeOf(err); got != tc.wantCode {
				t.Fatalf("Issue: code %v (%v), want %v", got, err, tc.wantCode)
			}
			if tc.wantCode != sdk.CodeOK {
				return
			}
			svid := creds.X509SVIDs[0]
			if svid.PrivateKey != nil {
				t.Error("a signing issuer returned a private key")
			}
			leaf := svid.Certificates[0]
			if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
				t.Error("the certificate's key is not the CSR's")
			}
			if id, err := x509svid.IDFromCert(leaf); err != nil || id != req.SPIFFEID {
				t.Errorf("the certificate is for %v (%v), want %s", id, err, req.SPIFFEID)
			}
			if _, _, err := x509svid.Verify(svid.Certificates, creds.X509Bundles); err != nil {
				t.Errorf("the chain does not verify against the bundle: %v", err)
			}
			if got := leaf.NotAfter.Sub(start); got > tc.wantTTL+time.Second || got < tc.wantTTL-time.Minute {
				t.Errorf("the certificate lives %s, want about %s", got, tc.wantTTL)
			}
		})
	}
}

// TestConfigureKeepsCA checks that a second Configure with the same trust
// domain keeps the CA (the bundle is stable across reloads) and that a new
// trust domain makes a new one.
func TestConfigureKeepsCA(t *testing.T) {
	i := configured(t, `{"trust_domain":"example.org"}`)
	first := i.ca
	if err := i.Configure(context.Background(), []byte(`{"trust_domain":"example.org","default_ttl":"5m"}`)); err != nil {
		t.Fatal(err)
	}
	if i.ca != first {
		t.Error("Configure with the same trust domain replaced the CA")
	}
	if err := i.Configure(context.Background(), []byte(`{"trust_domain":"example.com"}`)); err != nil {
		t.Fatal(err)
	}
	if i.ca == first || i.ca.td.Name() != "example.com" {
		t.Errorf("Configure with a new trust domain kept the CA for %s", i.ca.td)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		wantField    string // "" for a valid config; "-" for the whole object
	}{
		{"valid", `{"trust_domain":"example.org","default_ttl":"30m","backend_down":false}`, ""},
		{"missing trust domain", `{}`, "trust_domain"},
		{"bad trust domain", `{"trust_domain":"Example Org"}`, "trust_domain"},
		{"bad ttl", `{"trust_domain":"example.org","default_ttl":"soon"}`, "default_ttl"},
		{"ttl beyond the CA", `{"trust_domain":"example.org","default_ttl":"720h"}`, "default_ttl"},
		{"unknown attribute", `{"trust_domain":"example.org","ca_key":"x"}`, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := (&issuer{}).Validate([]byte(tc.config))
			if tc.wantField == "" {
				if len(es) != 0 {
					t.Fatalf("Validate(%s) = %v, want no errors", tc.config, es)
				}
				return
			}
			if len(es) != 1 {
				t.Fatalf("Validate(%s) = %v, want one error", tc.config, es)
			}
			if got := es[0].Field; (tc.wantField == "-" && got != "") || (tc.wantField != "-" && got != tc.wantField) {
				t.Fatalf("Validate(%s) names field %q, want %q", tc.config, got, tc.wantField)
			}
		})
	}
}

// TestIssueHammer issues from many goroutines while Configure and the
// backend switch change underneath: under -race, the lock must hold, and
// every answer is a valid SVID or UNAVAILABLE.
func TestIssueHammer(t *testing.T) {
	i := configured(t, `{"trust_domain":"example.org"}`)
	req, _ := request(t, "spiffe://example.org/web", time.Minute)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				creds, err := i.Issue(context.Background(), req)
				switch sdk.CodeOf(err) {
				case sdk.CodeOK:
					if len(creds.X509SVIDs) != 1 {
						t.Errorf("Issue returned %d SVIDs", len(creds.X509SVIDs))
						return
					}
				case sdk.CodeUnavailable:
				default:
					t.Errorf("Issue: %v", err)
					return
				}
			}
		}()
	}
	for n := range 40 {
		i.setBackendDown(n%2 == 0)
		if err := i.Configure(context.Background(), []byte(`{"trust_domain":"example.org"}`)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// goCommand is the go command on PATH.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
