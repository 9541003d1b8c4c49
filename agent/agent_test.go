package agent_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
)

var webID = spiffeid.RequireFromString("spiffe://example.org/web")

type harness struct {
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
	url    string
}

// start runs an agent for cfg until the test ends.
func start(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(cfg, agent.WithHealthListener(ln), agent.WithRetry(10*time.Millisecond, 50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{a: a, cancel: cancel, done: make(chan error, 1), url: "http://" + ln.Addr().String()}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil after cancel", err)
		}
		h.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func (h *harness) get(t *testing.T, path string) (int, agent.Status) {
	t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st agent.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, st
}

// waitStatus polls the readiness endpoint until want holds: readiness is
// a state judged on request, there is no event to wait for.
func (h *harness) waitReady(t *testing.T, want int) agent.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, st := h.get(t, "/ready")
		if code == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness stayed %d, want %d: %+v", code, want, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func svidCfg(issuer string, w *recWriter, notifiers ...config.Notifier) config.SVID {
	return config.SVID{
		Name: "web", Issuer: issuer, SPIFFEID: webID.String(), X509: true, RenewFraction: 0.5,
		Writers: []config.Plugin{plugin("fake", w)}, Notifiers: notifiers,
	}
}

func notifierCfg(n *recNotifier, on hostapi.Changes) config.Notifier {
	return config.Notifier{Plugin: plugin("fake", n), On: on, Timeout: 5 * time.Second}
}

func TestPullIssuerRotates(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: 400 * time.Millisecond}
	w, n := newRecWriter(), newRecNotifier()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-pull", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-pull", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	h := start(t, cfg)

	first := recv(t, w.wrote, "first write")
	if got := first.X509SVIDs[0].ID; got != webID {
		t.Fatalf("wrote %s, want %s", got, webID)
	}
	if first.X509SVIDs[0].PrivateKey == nil {
		t.Fatal("the core did not attach its key to the signed chain")
	}
	ev := recv(t, n.events, "first notification")
	if !ev.Initial || !ev.Reason.Has(hostapi.ChangedX509) {
		t.Fatalf("first event = %+v, want initial x509", ev)
	}
	second := recv(t, w.wrote, "renewal write")
	if first.X509SVIDs[0].Certificates[0].SerialNumber.Cmp(second.X509SVIDs[0].Certificates[0].SerialNumber) == 0 {
		t.Fatal("renewal delivered the same certificate")
	}
	if first.X509SVIDs[0].PrivateKey == second.X509SVIDs[0].PrivateKey {
		t.Fatal("renewal reused the key; each renewal must use a fresh key")
	}
	ev2 := recv(t, n.events, "rotation notification")
	if ev2.Initial || ev2.X509[0].Serial == ev.X509[0].Serial {
		t.Fatalf("second event = %+v, want a non-initial event with a new serial", ev2)
	}
	st := h.waitReady(t, http.StatusOK)
	if got := st.SVIDs[0].Outputs[0].SPIFFEID; got != webID.String() {
		t.Fatalf("status spiffe_id = %q", got)
	}
	if code, _ := h.get(t, "/live"); code != http.StatusOK {
		t.Fatalf("/live = %d", code)
	}
}

func TestReadinessFollowsExpiry(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: 1500 * time.Millisecond}
	w := newRecWriter()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-pull", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-pull", w)},
	}
	h := start(t, cfg)
	recv(t, w.wrote, "first write")
	h.waitReady(t, http.StatusOK)

	// The issuer goes down: the last good credential stays, and readiness
	// turns 503 when it expires.
	iss.failing.Store(true)
	st := h.waitReady(t, http.StatusServiceUnavailable)
	if st.SVIDs[0].IssuerError == "" {
		t.Errorf("status shows no issuer error: %+v", st.SVIDs[0])
	}
	if w.count() == 0 {
		t.Fatal("no credential was written")
	}
	// It recovers when the issuer does.
	iss.failing.Store(false)
	h.waitReady(t, http.StatusOK)
}

func TestWriteFailureIsRetried(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	w := newRecWriter()
	w.fail.Store(3)
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-pull", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-pull", w)},
	}
	h := start(t, cfg)
	set := recv(t, w.wrote, "write after failures")
	if set.Changed != hostapi.ChangedX509 {
		t.Errorf("retried write Changed = %v, want x509", set.Changed)
	}
	if w.fail.Load() != 0 {
		t.Fatalf("%d failures left", w.fail.Load())
	}
	h.waitReady(t, http.StatusOK)
	if n := iss.calls.Load(); n != 1 {
		t.Errorf("issuer called %d times; a write failure must not re-issue", n)
	}
}

func TestBurstCoalescesAndLastWins(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w := newRecWriter()
	w.block = make(chan struct{})
	n := newRecNotifier()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	start(t, cfg)

	var last *x509svid.SVID
	for range 50 {
		last = svidOf(t, ca, webID, time.Hour)
		iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{last}, X509Bundles: bundleOf(ca)}
	}
	w.mu.Lock()
	close(w.block)
	w.block = nil
	w.mu.Unlock()

	// The first delivery may be any early update; the last delivery must
	// be the last update, and there must be far fewer than 50 deliveries.
	deadline := time.After(20 * time.Second)
	for writes := 1; ; writes++ {
		var set *hostapi.CredentialSet
		select {
		case set = <-w.wrote:
		case <-deadline:
			t.Fatal("the last update was never written")
		}
		if set.X509SVIDs[0].Certificates[0].Equal(last.Certificates[0]) {
			if writes > 3 {
				t.Errorf("%d writes for a burst of 50; updates did not coalesce", writes)
			}
			break
		}
	}
	// The notifier's last event names the last serial too.
	want := serialOf(last)
	for {
		ev := recv(t, n.events, "notification of the last update")
		if ev.X509[0].Serial == want {
			break
		}
	}
}

func TestJWTRefreshDoesNotSignalX509Consumers(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w := newRecWriter()
	x509n, jwtn := newRecNotifier(), newRecNotifier()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs: []config.SVID{svidCfg("fake-push", w,
			notifierCfg(x509n, hostapi.ChangedX509),
			notifierCfg(jwtn, hostapi.ChangedJWTBundle))},
	}
	cfg.SVIDs[0].JWTBundles = true
	cfg.SVIDs[0].Notifiers[1].Name = "fake#2"
	start(t, cfg)

	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svidOf(t, ca, webID, time.Hour)}, X509Bundles: bundleOf(ca), JWTBundles: newJWTBundles(t, "example.org")}
	recv(t, w.wrote, "first write")
	recv(t, x509n.events, "initial x509 notification")
	recv(t, jwtn.events, "initial jwt notification")

	iss.updates <- &hostapi.Credentials{JWTBundles: newJWTBundles(t, "example.org")}
	set := recv(t, w.wrote, "jwt bundle write")
	if set.Changed != hostapi.ChangedJWTBundle {
		t.Fatalf("Changed = %v, want jwt_bundle", set.Changed)
	}
	ev := recv(t, jwtn.events, "jwt bundle notification")
	if ev.Reason != hostapi.ChangedJWTBundle {
		t.Fatalf("reason = %v", ev.Reason)
	}
	// An X.509 change reaches the X.509 consumer; had the JWT change
	// reached it, it would be queued before this one.
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svidOf(t, ca, webID, time.Hour)}}
	ev = recv(t, x509n.events, "x509 notification")
	if !ev.Reason.Has(hostapi.ChangedX509) || ev.Reason.Has(hostapi.ChangedJWTBundle) {
		t.Fatalf("x509 consumer got reason %v, want x509 only", ev.Reason)
	}
}

func TestSlowNotifierDelaysNoOther(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
	w := newRecWriter()
	slow, fast := newRecNotifier(), newRecNotifier()
	slow.block = make(chan struct{})
	defer close(slow.block)
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-pull", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-pull", w, notifierCfg(slow, hostapi.ChangedX509), notifierCfg(fast, hostapi.ChangedX509))},
	}
	cfg.SVIDs[0].Notifiers[1].Name = "fake#2"
	start(t, cfg)
	recv(t, fast.events, "fast notifier, while the slow one hangs")
}

func TestUnverifiableChainIsNotWritten(t *testing.T) {
	ca, other := newTestCA(t, "example.org"), newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w := newRecWriter()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w)},
	}
	h := start(t, cfg)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svidOf(t, other, webID, time.Hour)}, X509Bundles: bundleOf(ca)}
	good := svidOf(t, ca, webID, time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{good}}
	set := recv(t, w.wrote, "write of the verifiable chain")
	if !set.X509SVIDs[0].Certificates[0].Equal(good.Certificates[0]) {
		t.Fatal("a chain that does not verify against its bundle was written")
	}
	h.waitReady(t, http.StatusOK)
}

func TestFetch(t *testing.T) {
	ca := newTestCA(t, "example.org")
	t.Run("success", func(t *testing.T) {
		iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
		w, n := newRecWriter(), newRecNotifier()
		cfg := &config.Config{
			FetchTimeout: 10 * time.Second,
			Issuers:      []config.Plugin{plugin("fake-pull", iss)},
			SVIDs:        []config.SVID{svidCfg("fake-pull", w, notifierCfg(n, hostapi.ChangedX509))},
		}
		if err := agent.New(cfg).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if w.count() != 1 {
			t.Fatalf("%d writes, want 1", w.count())
		}
		if len(n.events) != 0 {
			t.Fatal("a one-shot fetch ran a notifier")
		}
	})
	t.Run("x509 and jwt at once", func(t *testing.T) {
		// The X.509 answer waits for the JWT request: a fetch that asked
		// for one after the other would never get it.
		iss := &rendezvousIssuer{pullIssuer: pullIssuer{t: t, ca: ca, ttl: time.Hour}, jwtAsked: make(chan struct{})}
		w := newRecWriter()
		s := svidCfg("fake-rendezvous", w)
		s.JWT = []hostapi.JWTRequest{{Audience: "aud", FileName: "jwt.token"}}
		s.JWTBundles = true
		cfg := &config.Config{
			FetchTimeout: 10 * time.Second,
			Issuers:      []config.Plugin{plugin("fake-rendezvous", iss)},
			SVIDs:        []config.SVID{s},
		}
		if err := agent.New(cfg).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		set := recv(t, w.wrote, "the one write")
		if len(set.X509SVIDs) != 1 || len(set.JWTSVIDs) != 1 || set.JWTBundles == nil {
			t.Fatalf("wrote %d X509-SVIDs, %d JWT-SVIDs, JWT bundles %v; want one of each", len(set.X509SVIDs), len(set.JWTSVIDs), set.JWTBundles)
		}
	})
	t.Run("pushing issuer gets no CSR", func(t *testing.T) {
		// A pushing issuer owns its keys: a one-shot makes no key and no
		// CSR for it, and writes the key it returned.
		iss := &ownKeysIssuer{t: t, ca: ca}
		w := newRecWriter()
		cfg := &config.Config{
			FetchTimeout: 10 * time.Second,
			Issuers:      []config.Plugin{plugin("fake-ownkeys", iss)},
			SVIDs:        []config.SVID{svidCfg("fake-ownkeys", w)},
		}
		if err := agent.New(cfg).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(iss.csrs) != 1 || iss.csrs[0] != nil {
			t.Fatalf("the issuer was sent %d requests (the first CSR %d bytes); want one, without a CSR", len(iss.csrs), len(iss.csrs[0]))
		}
		set := recv(t, w.wrote, "the one write")
		if set.X509SVIDs[0].PrivateKey == nil {
			t.Fatal("the written SVID has no private key")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		iss := &pullIssuer{t: t, ca: ca, ttl: time.Hour}
		iss.failing.Store(true)
		cfg := &config.Config{
			FetchTimeout: 300 * time.Millisecond,
			Issuers:      []config.Plugin{plugin("fake-pull", iss)},
			SVIDs:        []config.SVID{svidCfg("fake-pull", newRecWriter())},
		}
		err := agent.New(cfg, agent.WithRetry(10*time.Millisecond, 20*time.Millisecond)).Fetch(context.Background())
		if err == nil {
			t.Fatal("fetch against a failing issuer succeeded")
		}
		if iss.calls.Load() < 2 {
			t.Errorf("issuer called %d times; the fetch must retry until its timeout", iss.calls.Load())
		}
	})
}

// TestStatusHammer reads status while deliveries run, for -race.
func TestStatusHammer(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w := newRecWriter()
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w)},
	}
	h := start(t, cfg)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_ = h.a.Status()
				}
			}
		}()
	}
	for range 200 {
		iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svidOf(t, ca, webID, time.Hour)}, X509Bundles: bundleOf(ca)}
	}
	close(stop)
	wg.Wait()
}
