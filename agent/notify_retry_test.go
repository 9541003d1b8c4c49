package agent_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
)

// TestNotificationRetried: a notification that fails is tried again by the
// core, without a new rotation, until it succeeds (spiffe-helper #333 for
// every notifier); each retry is counted, and /status says it is retrying
// while it waits.
func TestNotificationRetried(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	n.failing.Store(3)
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	h := start(t, cfg)
	s := svidOf(t, ca, webID, time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{s}, X509Bundles: bundleOf(ca)}
	want := serialOf(s)
	for i := range 3 {
		if ev := recv(t, n.failed, "a failed attempt"); ev.X509[0].Serial != want {
			t.Fatalf("attempt %d was for serial %s, want %s", i+1, ev.X509[0].Serial, want)
		}
	}
	if ev := recv(t, n.events, "the retried notification"); ev.X509[0].Serial != want || !ev.Initial {
		t.Fatalf("delivered %+v, want the initial event of serial %s", ev, want)
	}
	h.waitMetric(t, "svidagent_notifier_retries_total", map[string]string{"svid": "web", "notifier": "fake"}, eq(3))
	ns := h.status(t).SVIDs[0].Notifiers[0]
	if ns.Calls != 4 || ns.Retrying || ns.LastError != "" {
		t.Fatalf("notifier status after the retries = %+v, want 4 calls, not retrying, no error", ns)
	}
}

// TestNotificationRetrySuperseded: a newer rotation replaces the pending
// retry of an older one; the older one is never delivered after it.
func TestNotificationRetrySuperseded(t *testing.T) {
	ca := newTestCA(t, "example.org")
	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	n.failing.Store(1 << 40)
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))},
	}
	h := start(t, cfg)
	first := svidOf(t, ca, webID, time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{first}, X509Bundles: bundleOf(ca)}
	old := serialOf(first)
	recv(t, n.failed, "the first rotation's failed attempt")
	// Its retry is under way: the failure was recorded before it.
	recv(t, n.failed, "the first rotation's first retry")
	ns := h.status(t).SVIDs[0].Notifiers[0]
	if !ns.Retrying || ns.Attempts < 1 || ns.NextAttempt == nil || ns.LastError == "" {
		t.Fatalf("status while retrying = %+v, want retrying with attempts, next attempt and the error", ns)
	}

	second := svidOf(t, ca, webID, time.Hour)
	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{second}, X509Bundles: bundleOf(ca)}
	latest := serialOf(second)
	for {
		ev := recv(t, n.failed, "a failed attempt of the second rotation")
		if ev.X509[0].Serial == latest {
			break // from here on the first rotation is no longer retried
		}
	}
	n.failing.Store(0)
	ev := recv(t, n.events, "the second rotation's notification")
	if ev.X509[0].Serial != latest {
		t.Fatalf("delivered serial %s, want the newer %s (older %s)", ev.X509[0].Serial, latest, old)
	}
	select {
	case ev := <-n.events:
		t.Fatalf("a further delivery after the newer rotation: serial %s", ev.X509[0].Serial)
	default:
	}
}
