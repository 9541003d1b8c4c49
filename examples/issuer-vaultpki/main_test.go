package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/examples/issuer-vaultpki/internal/vaulttest"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

const tokenID = "hvs.test-token"

var webID = spiffeid.RequireFromString("spiffe://example.org/web")

// fakeClock hands the loop's timers to the test, which fires them.
type fakeClock struct{ waits chan fakeTimer }

type fakeTimer struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{waits: make(chan fakeTimer, 100)} }

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- fakeTimer{d: d, fire: ch}
	return ch
}

// next returns the loop's next timer, failing after a deadline.
func (c *fakeClock) next(t *testing.T) fakeTimer {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("the renewal loop asked for no timer within 10s")
		return fakeTimer{}
	}
}

// none checks that the loop asked for no further timer.
func (c *fakeClock) none(t *testing.T) {
	t.Helper()
	select {
	case w := <-c.waits:
		t.Fatalf("the loop asked for a timer of %s; want none", w.d)
	default:
	}
}

// logBuf collects log records as text.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is a vault test server with one token and one role, and an issuer
// configured against it with a fake clock.
type fixture struct {
	srv *vaulttest.Server
	iss *issuer
	clk *fakeClock
	log *logBuf
}

func newFixture(t *testing.T, tok vaulttest.Token) *fixture {
	t.Helper()
	srv := vaulttest.New(t, vaulttest.Options{})
	tok.ID = tokenID
	srv.AddToken(tok)
	srv.AddRole("svid", vaulttest.Role{AllowedURISANs: []string{"spiffe://example.org/*"}, MaxTTL: 2 * time.Hour})
	lb := &logBuf{}
	iss := newIssuer(slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	clk := newFakeClock()
	iss.after, iss.floor = clk.after, time.Second
	cfg, _ := json.Marshal(map[string]string{"address": srv.URL, "token": tokenID, "role": "svid"})
	if err := iss.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Stop)
	return &fixture{srv: srv, iss: iss, clk: clk, log: lb}
}

func (f *fixture) counts(t *testing.T, success, failure, notRenewable int64) {
	t.Helper()
	got := [3]int64{f.iss.Renewals(resultSuccess), f.iss.Renewals(resultFailure), f.iss.Renewals(resultNotRenewable)}
	if want := [3]int64{success, failure, notRenewable}; got != want {
		t.Errorf("renewals {success, failure, not_renewable} = %v, want %v", got, want)
	}
}

// loopDone returns the running loop's done channel (nil when none runs).
func (f *fixture) loopDone() chan struct{} {
	f.iss.lcMu.Lock()
	defer f.iss.lcMu.Unlock()
	return f.iss.done
}

func waitDone(t *testing.T, done chan struct{}) {
	t.Helper()
	if done == nil {
		t.Fatal("no loop was running")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the renewal loop did not exit within 10s")
	}
}

func TestRenewAtHalfTTL(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
	if err := f.iss.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count("lookup-self"); n != 1 {
		t.Errorf("%d lookups at Start, want 1", n)
	}
	w := f.clk.next(t)
	if w.d < 29*time.Minute || w.d > 30*time.Minute {
		t.Errorf("first renewal in %s, want half the looked-up TTL (30m)", w.d)
	}
	// Each renewal grants a TTL; the next interval is half of it.
	for i, grant := range []time.Duration{2 * time.Hour, 40 * time.Minute, 90 * time.Second} {
		f.srv.SetTokenTTL(tokenID, grant)
		w.fire <- time.Now()
		w = f.clk.next(t)
		if w.d != grant/2 {
			t.Errorf("renewal %d granted %s; next renewal in %s, want %s", i+1, grant, w.d, grant/2)
		}
		if n := f.srv.Count("renew-self"); n != i+1 {
			t.Errorf("server saw %d renewals, want %d", n, i+1)
		}
	}
	f.counts(t, 3, 0, 0)
	f.iss.Stop()
	f.clk.none(t)
	if n := f.srv.Count("renew-self"); n != 3 {
		t.Errorf("server saw %d renewals after Stop, want 3", n)
	}
}

func TestIntervalFloor(t *testing.T) {
	tests := []struct {
		name      string
		ttl, want time.Duration
	}{
		{"half", time.Hour, 30 * time.Minute},
		{"odd", 3 * time.Second, 1500 * time.Millisecond},
		{"at the floor", 2 * time.Second, time.Second},
		{"below the floor", time.Second, time.Second},
		{"zero", 0, time.Second},
	}
	iss := newIssuer(slog.New(slog.DiscardHandler))
	iss.floor = time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := iss.interval(tt.ttl); got != tt.want {
				t.Errorf("interval(%s) = %s, want %s", tt.ttl, got, tt.want)
			}
		})
	}
	if got := newIssuer(slog.New(slog.DiscardHandler)).interval(time.Second); got != minRenewInterval {
		t.Errorf("default floor %s, want %s", got, minRenewInterval)
	}
}

func TestNotRenewableAtStart(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: false})
	if err := f.iss.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := f.loopDone(); d != nil {
		t.Error("a loop runs for a non-renewable token")
	}
	f.clk.none(t)
	f.counts(t, 0, 0, 1)
	if !strings.Contains(f.log.String(), "level=WARN") || !strings.Contains(f.log.String(), "vault token is not renewable; rotate the token before TTL expires") {
		t.Errorf("no WARN about the token:\n%s", f.log)
	}
	f.iss.Stop()
	f.iss.Stop()
	if n := f.srv.Count("renew-self"); n != 0 {
		t.Errorf("%d renewals of a non-renewable token", n)
	}
}

func TestNoExpiryStartsNothing(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: 0, Renewable: true})
	if err := f.iss.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := f.loopDone(); d != nil {
		t.Error("a loop runs for a token that does not expire")
	}
	f.counts(t, 0, 0, 0)
}

func TestNotRenewableAfterRenewal(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(*vaulttest.Server)
	}{
		// The renewal succeeds but says renewable=false.
		{"renewal answers renewable false", func(s *vaulttest.Server) { s.DemoteOnNextRenewal(tokenID) }},
		// Vault refuses the renewal: 400 "lease is not renewable".
		{"renewal refused as not renewable", func(s *vaulttest.Server) { s.SetRenewable(tokenID, false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
			if err := f.iss.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			w := f.clk.next(t)
			w.fire <- time.Now() // a normal renewal
			w = f.clk.next(t)
			tt.prepare(f.srv)
			done := f.loopDone()
			w.fire <- time.Now()
			waitDone(t, done)
			f.clk.none(t) // the loop asked for no further tick
			f.counts(t, 1, 0, 1)
			if n := f.srv.Count("renew-self"); n != 2 {
				t.Errorf("server saw %d renewals, want 2", n)
			}
			if !strings.Contains(f.log.String(), "level=WARN") || !strings.Contains(f.log.String(), "rotate the token before TTL expires") {
				t.Errorf("no WARN:\n%s", f.log)
			}
			f.iss.Stop() // returns at once: the loop is gone
		})
	}
}

func TestRenewalFailuresCountedAndLoopContinues(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
	if err := f.iss.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := f.clk.next(t)
	first := w.d
	// A sealed Vault (503) fails the renewal: counted, logged, and the
	// next attempt comes at half of what is left.
	f.srv.Seal(true)
	w.fire <- time.Now()
	w = f.clk.next(t)
	if want := (time.Hour - first) / 2; w.d < want-time.Second || w.d > want+time.Second {
		t.Errorf("after a failure the next attempt is in %s, want about %s", w.d, want)
	}
	f.counts(t, 0, 1, 0)
	log := f.log.String()
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "vault token renewal failed; rotate the token before TTL expires") || !strings.Contains(log, "Vault is sealed") {
		t.Errorf("no actionable ERROR with Vault's reason:\n%s", log)
	}
	f.srv.Seal(false)
	f.srv.SetTokenTTL(tokenID, 10*time.Minute)
	w.fire <- time.Now()
	w = f.clk.next(t)
	if w.d != 5*time.Minute {
		t.Errorf("after recovering the next renewal is in %s, want 5m", w.d)
	}
	f.counts(t, 1, 1, 0)
	// A revoked token (403) fails too, and the loop still goes on.
	f.srv.RevokeToken(tokenID)
	w.fire <- time.Now()
	w = f.clk.next(t)
	f.counts(t, 1, 2, 0)
	if !strings.Contains(f.log.String(), "permission denied") {
		t.Errorf("the 403's reason is not logged:\n%s", f.log)
	}
	f.iss.Stop()
	f.clk.none(t)
}

func TestStop(t *testing.T) {
	t.Run("without start", func(t *testing.T) {
		iss := newIssuer(slog.New(slog.DiscardHandler))
		iss.Stop()
		iss.Stop()
	})
	t.Run("while waiting, twice", func(t *testing.T) {
		f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
		if err := f.iss.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.clk.next(t)
		done := f.loopDone()
		f.iss.Stop()
		select {
		case <-done:
		default:
			t.Fatal("Stop returned before the loop exited")
		}
		f.iss.Stop()
		f.counts(t, 0, 0, 0)
	})
	t.Run("by the context", func(t *testing.T) {
		f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
		ctx, cancel := context.WithCancel(context.Background())
		if err := f.iss.Start(ctx); err != nil {
			t.Fatal(err)
		}
		f.clk.next(t)
		done := f.loopDone()
		cancel()
		waitDone(t, done)
		f.iss.Stop()
		f.counts(t, 0, 0, 0)
	})
	t.Run("restart after stop", func(t *testing.T) {
		f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
		for range 3 {
			if err := f.iss.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.clk.next(t)
			f.iss.Stop()
		}
		if n := f.srv.Count("lookup-self"); n != 3 {
			t.Errorf("%d lookups, want one per Start", n)
		}
	})
	t.Run("start twice without stop", func(t *testing.T) {
		f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
		if err := f.iss.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := f.iss.Start(context.Background()); err == nil {
			t.Error("a second Start succeeded")
		}
	})
}

// TestStopHammer stops while renewals are in flight, under -race.
func TestStopHammer(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
	f.iss.after = func(time.Duration) <-chan time.Time { // renew at once, always
		ch := make(chan time.Time, 1)
		ch <- time.Now()
		return ch
	}
	for range 20 {
		if err := f.iss.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); _ = f.iss.Renewals(resultSuccess); f.iss.Stop() }()
		}
		wg.Wait()
	}
	if f.iss.Renewals(resultFailure) != 0 {
		t.Errorf("%d failures: stopping was counted as failing", f.iss.Renewals(resultFailure))
	}
}

func TestStartFailsOnBadToken(t *testing.T) {
	srv := vaulttest.New(t, vaulttest.Options{})
	iss := newIssuer(slog.New(slog.DiscardHandler))
	cfg, _ := json.Marshal(map[string]string{"address": srv.URL, "token": "hvs.unknown", "role": "svid"})
	if err := iss.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	err := iss.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "check the token") {
		t.Fatalf("Start = %v, want a permission denied error saying what to check", err)
	}
	iss.Stop()
}

func newCSR(t *testing.T, id spiffeid.ID) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

func TestIssue(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
	key, csr := newCSR(t, webID)
	creds, err := f.iss.Issue(context.Background(), &hostapi.IssueRequest{SPIFFEID: webID, X509: true, CSR: csr, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.X509SVIDs) != 1 {
		t.Fatalf("%d SVIDs, want 1", len(creds.X509SVIDs))
	}
	s := creds.X509SVIDs[0]
	if s.ID != webID || s.PrivateKey != nil {
		t.Errorf("SVID %s (key %v), want %s without a key", s.ID, s.PrivateKey != nil, webID)
	}
	leaf := s.Certificates[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != webID.String() {
		t.Errorf("URI SANs %v, want [%s]", leaf.URIs, webID)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("the certificate's key is not the CSR's")
	}
	if life := leaf.NotAfter.Sub(time.Now()); life > 10*time.Minute || life < 9*time.Minute {
		t.Errorf("lifetime %s, want the requested 10m", life)
	}
	if len(s.Certificates) != 2 || !s.Certificates[1].Equal(f.srv.Intermediate()) {
		t.Errorf("chain of %d, want leaf + vault's intermediate", len(s.Certificates))
	}
	if _, _, err := x509svid.Verify(s.Certificates, creds.X509Bundles); err != nil {
		t.Errorf("the chain does not verify against the returned bundle: %v", err)
	}
	b, err := creds.X509Bundles.GetX509BundleForTrustDomain(webID.TrustDomain())
	if err != nil || len(b.X509Authorities()) != 1 || !b.X509Authorities()[0].Equal(f.srv.Root()) {
		t.Errorf("bundle %v (%v), want vault's root alone", b, err)
	}
	if n := f.srv.Count("sign"); n != 1 {
		t.Errorf("%d sign calls, want 1", n)
	}
}

func TestIssueErrors(t *testing.T) {
	other := spiffeid.RequireFromString("spiffe://other.org/x")
	tests := []struct {
		name    string
		role    string
		id      spiffeid.ID
		csr     func(*testing.T) []byte
		jwt     bool
		prepare func(*vaulttest.Server)
		code    sdk.Code
		msg     string
	}{
		{name: "unknown role", role: "nope", code: sdk.CodeFailedPrecondition, msg: "unknown role: nope"},
		{name: "URI SAN not allowed", id: other, code: sdk.CodeFailedPrecondition, msg: "not allowed by this role"},
		{name: "revoked token", prepare: func(s *vaulttest.Server) { s.RevokeToken(tokenID) }, code: sdk.CodeFailedPrecondition, msg: "permission denied"},
		{name: "sealed", prepare: func(s *vaulttest.Server) { s.Seal(true) }, code: sdk.CodeUnavailable, msg: "Vault is sealed"},
		{name: "backend down", prepare: func(s *vaulttest.Server) { s.Close() }, code: sdk.CodeUnavailable, msg: "signing the CSR"},
		{name: "bad CSR", csr: func(*testing.T) []byte { return []byte("nope") }, code: sdk.CodeInvalidArgument, msg: "parsing the CSR"},
		{name: "JWT asked", jwt: true, code: sdk.CodeInvalidArgument, msg: "X509-SVIDs only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
			if tt.role != "" {
				cfg, _ := json.Marshal(map[string]string{"address": f.srv.URL, "token": tokenID, "role": tt.role})
				if err := f.iss.Configure(context.Background(), cfg); err != nil {
					t.Fatal(err)
				}
			}
			id := webID
			if !tt.id.IsZero() {
				id = tt.id
			}
			_, csr := newCSR(t, id)
			if tt.csr != nil {
				csr = tt.csr(t)
			}
			if tt.prepare != nil {
				tt.prepare(f.srv)
			}
			req := &hostapi.IssueRequest{SPIFFEID: id, X509: true, CSR: csr}
			if tt.jwt {
				req.JWT = []hostapi.JWTRequest{{Audience: "a", FileName: "a"}}
			}
			creds, err := f.iss.Issue(context.Background(), req)
			if err == nil {
				t.Fatalf("Issue = %v, want an error", creds)
			}
			if creds != nil {
				t.Error("credentials returned with the error")
			}
			if got := sdk.CodeOf(err); got != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Issue error %v (code %d), want code %d containing %q", err, got, tt.code, tt.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(" hvs.x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cfg    string
		fields []string
	}{
		{"minimal", `{"address":"https://v:8200","token":"t","role":"svid"}`, nil},
		{"token file", fmt.Sprintf(`{"address":"https://v:8200","token_file":%q,"role":"svid","mount":"pki_int","ttl":"1h"}`, tokFile), nil},
		{"empty", `{}`, []string{"address", "token", "role"}},
		{"not json", `[`, []string{""}},
		{"both tokens", fmt.Sprintf(`{"address":"https://v","token":"t","token_file":%q,"role":"r"}`, tokFile), []string{"token_file"}},
		{"empty token file", fmt.Sprintf(`{"address":"https://v","token_file":%q,"role":"r"}`, empty), []string{"token_file"}},
		{"bad address", `{"address":"v:8200","token":"t","role":"r"}`, []string{"address"}},
		{"bad ttl", `{"address":"https://v","token":"t","role":"r","ttl":"soon"}`, []string{"ttl"}},
		{"unknown", `{"address":"https://v","token":"t","role":"r","roel":"x"}`, []string{"roel"}},
		{"wrong type", `{"address":"https://v","token":"t","role":7}`, []string{"role", "role"}},
		{"missing ca cert", `{"address":"https://v","token":"t","role":"r","ca_cert":"/nonexistent"}`, []string{"ca_cert"}},
	}
	iss := newIssuer(slog.New(slog.DiscardHandler))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range iss.Validate([]byte(tt.cfg)) {
				got = append(got, e.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("problems in %v, want %v", got, tt.fields)
			}
			err := iss.Configure(context.Background(), []byte(tt.cfg))
			var fe hostapi.FieldErrors
			if (err == nil) != (len(tt.fields) == 0) || (err != nil && !errors.As(err, &fe)) {
				t.Errorf("Configure = %v", err)
			}
		})
	}
}

// recordingHost is a host with the agent's counter service.
type recordingHost struct {
	mu     sync.Mutex
	counts map[string]float64
}

func (h *recordingHost) Log(slog.Level, string, ...any) {}
func (h *recordingHost) HTTP(context.Context, *sdk.HTTPRequest) (*sdk.HTTPResponse, error) {
	return nil, sdk.ErrNotAllowed
}

func (h *recordingHost) Counter(_ context.Context, name, _ string, labels map[string]string, delta float64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[name+"{result="+labels["result"]+"}"] += delta
	return nil
}

func TestRenewalCounterExported(t *testing.T) {
	f := newFixture(t, vaulttest.Token{TTL: time.Hour, Renewable: true})
	h := &recordingHost{counts: map[string]float64{}}
	if err := f.iss.Start(sdk.WithHost(context.Background(), h)); err != nil {
		t.Fatal(err)
	}
	w := f.clk.next(t)
	w.fire <- time.Now()
	w = f.clk.next(t)
	f.srv.Seal(true)
	w.fire <- time.Now()
	w = f.clk.next(t)
	f.srv.Seal(false)
	f.srv.DemoteOnNextRenewal(tokenID)
	done := f.loopDone()
	w.fire <- time.Now()
	waitDone(t, done)
	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[string]float64{
		"vault_token_renewals_total{result=success}":       1,
		"vault_token_renewals_total{result=failure}":       1,
		"vault_token_renewals_total{result=not_renewable}": 1,
	}
	if fmt.Sprint(h.counts) != fmt.Sprint(want) {
		t.Errorf("exported %v, want %v", h.counts, want)
	}
}
