package faults_test

import (
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/spiretest"
)

// diskSerial returns the serial of the certificate on disk, or "".
func diskLeaf(dir string) (serial string, notAfter time.Time) {
	b, err := os.ReadFile(filepath.Join(dir, "svid.pem"))
	if err != nil {
		return "", time.Time{}
	}
	certs, err := parseCerts(b)
	if err != nil {
		return "", time.Time{}
	}
	return serialHex(certs[0]), certs[0].NotAfter
}

// outputSerial returns the serial that health reports for the one output.
func outputSerial(st status) string {
	if len(st.SVIDs) != 1 || len(st.SVIDs[0].Outputs) != 1 {
		return ""
	}
	return st.SVIDs[0].Outputs[0].Serial
}

// TestSPIREAgentRestarts SIGKILLs the SPIRE agent and starts it again 20
// times while svidagent runs. A watcher checks the output files
// continuously: none may ever be missing, empty or unparsable. After each
// kill svidagent reports the issuer error while staying ready (the files
// are still valid: that is the real state); after each restart it
// reconnects (go-spiffe's linear backoff: 1s, 2s, ...), the next rotation
// is delivered (a new serial on disk, the same serial in health) and the
// issuer error clears.
func TestSPIREAgentRestarts(t *testing.T) {
	const restarts = 20
	// SPIRE rotates once half of TTL+10s has passed: every ~2.5s here.
	spire := spiretest.Start(t, spiretest.Options{X509TTL: 15 * time.Second})
	id := "spiffe://" + spire.TrustDomain() + "/restarts"
	spire.CreateEntry(t, id, spiretest.UIDSelector())

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "agent.hcl"), nativeConfig(spire.SocketAddr(), out, "flat", port, ""))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	h := health{fmt.Sprintf("http://127.0.0.1:%d", port)}
	testkit.WaitFor(t, 30*time.Second, "readiness 200", func() bool { c, _ := h.ready(); return c == http.StatusOK })
	checkX509Dir(t, out)

	w := watchFiles(out)
	stopped := false
	stopWatch := func() {
		if !stopped {
			stopped = true
			w.stop()
		}
	}
	defer stopWatch()

	var reconnect []time.Duration
	for i := 1; i <= restarts; i++ {
		before, _ := diskLeaf(out)
		spire.KillAgent(t)
		// The stream breaks at once: health shows the issuer error. The
		// files on disk are unexpired, so readiness stays 200.
		testkit.WaitFor(t, 15*time.Second, fmt.Sprintf("restart %d: the issuer error in health", i), func() bool {
			_, st := h.ready()
			return len(st.SVIDs) == 1 && st.SVIDs[0].IssuerError != ""
		})
		code, st := h.ready()
		_, notAfter := diskLeaf(out)
		if want := readyCode(time.Now().Before(notAfter)); code != want {
			t.Fatalf("restart %d: readiness %d while the SPIRE agent is down and the certificate on disk expires at %s; want %d: %+v", i, code, notAfter, want, st)
		}
		if c, _ := h.live(); c != http.StatusOK {
			t.Fatalf("restart %d: liveness %d while the SPIRE agent is down; svidagent itself is fine", i, c)
		}

		restarted := time.Now()
		spire.StartAgent(t)
		var after string
		testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("restart %d: a new serial on disk, ready, reported in health, no issuer error", i), func() bool {
			s, _ := diskLeaf(out)
			code, st := h.ready()
			after = s
			return s != "" && s != before && code == http.StatusOK && outputSerial(st) == s && st.SVIDs[0].IssuerError == ""
		})
		reconnect = append(reconnect, time.Since(restarted))
		t.Logf("restart %d: %s -> %s after %s", i, before, after, time.Since(restarted).Round(time.Millisecond))
	}
	stopWatch()
	if len(w.violations) != 0 {
		t.Errorf("%d file violations (missing, empty or unparsable) across %d restarts: %q", len(w.violations), restarts, w.violations)
	}
	// The flat layout's documented cert/key window may show; it is measured
	// in TestTornReads. Here it is only reported.
	t.Logf("file watcher: %d checks, %d violations, %d cert/key mismatches (flat window)", w.checks, len(w.violations), w.mismatches)
	if w.checks < restarts*10 {
		t.Errorf("the file watcher ran only %d checks", w.checks)
	}
	var total, worst time.Duration
	for _, d := range reconnect {
		total += d
		worst = max(worst, d)
	}
	fmt.Printf("FAULTS-FIGURE spire-agent-restarts restarts=%d checks=%d violations=%d mean_recovery=%s max_recovery=%s\n",
		restarts, w.checks, len(w.violations), (total / time.Duration(len(reconnect))).Round(time.Millisecond), worst.Round(time.Millisecond))
	checkX509Dir(t, out)
	if code := p.signalAndWait(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func readyCode(ready bool) int {
	if ready {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// TestSPIREServerOutage stops the SPIRE server until the X509-SVID on disk
// expires. The SPIRE agent keeps serving its cached SVID and cannot renew
// it, so svidagent gets nothing new: it keeps the last good files
// (byte-identical), readiness stays 200 until the certificate's NotAfter
// and turns 503 then, liveness stays 200, and once the server is back the
// agent re-syncs, a new SVID is delivered and readiness returns to 200.
func TestSPIREServerOutage(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{X509TTL: 15 * time.Second})
	id := "spiffe://" + spire.TrustDomain() + "/outage"
	spire.CreateEntry(t, id, spiretest.UIDSelector())

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "agent.hcl"), nativeConfig(spire.SocketAddr(), out, "flat", port, ""))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	h := health{fmt.Sprintf("http://127.0.0.1:%d", port)}
	testkit.WaitFor(t, 30*time.Second, "readiness 200", func() bool { c, _ := h.ready(); return c == http.StatusOK })

	spire.StopServer(t)
	stoppedAt := time.Now()
	// A delivery that was under way when the server stopped settles: the
	// serial on disk is the one health reports.
	var serial string
	var notAfter time.Time
	testkit.WaitFor(t, 10*time.Second, "health and disk to agree", func() bool {
		serial, notAfter = diskLeaf(out)
		_, st := h.ready()
		return serial != "" && outputSerial(st) == serial
	})
	last := snapshot(t, out)
	t.Logf("server stopped; the SVID on disk (%s) expires in %s", serial, time.Until(notAfter).Round(time.Millisecond))

	// Poll readiness through the expiry: 200 before NotAfter, 503 after.
	var firstUnready time.Time
	testkit.WaitFor(t, time.Until(notAfter)+20*time.Second, "readiness 503 after the SVID expired", func() bool {
		code, st := h.ready()
		now := time.Now()
		switch {
		case code == http.StatusServiceUnavailable:
			if now.Before(notAfter) {
				t.Fatalf("readiness 503 at %s, before the SVID on disk expires at %s: %+v", now.Format(time.StampMilli), notAfter.Format(time.StampMilli), st)
			}
			firstUnready = now
			if !strings.Contains(strings.Join(st.Problems, " "), "expired") {
				t.Errorf("readiness problems %q do not say the credential expired", st.Problems)
			}
			return true
		case code != http.StatusOK:
			t.Fatalf("readiness %d", code)
		}
		return false
	})
	lag := firstUnready.Sub(notAfter)
	t.Logf("readiness turned 503 %s after NotAfter (poll interval 20ms)", lag.Round(time.Millisecond))
	if lag > 2*time.Second {
		t.Errorf("readiness turned 503 %s after the SVID expired", lag)
	}
	if c, _ := h.live(); c != http.StatusOK {
		t.Errorf("liveness %d during the server outage; svidagent itself is fine", c)
	}
	if d := diffSnapshots(last, snapshot(t, out)); d != "" {
		t.Errorf("the output changed during the outage: %s", d)
	}
	if s, _ := diskLeaf(out); s != serial {
		t.Errorf("serial on disk %s, want the last good %s", s, serial)
	}

	spire.StartServer(t)
	back := time.Now()
	testkit.WaitFor(t, 60*time.Second, "readiness 200 with a new SVID after the server returned", func() bool {
		s, _ := diskLeaf(out)
		code, st := h.ready()
		return s != serial && code == http.StatusOK && outputSerial(st) == s
	})
	recovery := time.Since(back)
	leaf := checkX509Dir(t, out)
	if !time.Now().Before(leaf.NotAfter) {
		t.Errorf("the recovered SVID expired at %s", leaf.NotAfter)
	}
	fmt.Printf("FAULTS-FIGURE spire-server-outage outage=%s unready_after_notafter=%s recovery=%s\n",
		time.Since(stoppedAt).Round(time.Millisecond), lag.Round(time.Millisecond), recovery.Round(time.Millisecond))
	if code := p.signalAndWait(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}
