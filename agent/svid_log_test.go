package agent_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"github.com/svidagent/svidagent/internal/testkit"
	"net"
	"strings"
	"testing"
	"time"

	"log/slog"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
)

// TestDeliveredLogNamesTheCertsOwnSerialAndExpiry: the "credentials
// delivered" record gives the logged certificate's serial as openssl
// prints it (two hex digits a byte, leading zero kept) and that
// certificate's own not_after, not the earliest expiry of another SVID in
// the set.
func TestDeliveredLogNamesTheCertsOwnSerialAndExpiry(t *testing.T) {
	ca := newTestCA(t, "example.org")
	// A serial whose first byte is below 0x10: "%x" drops its zero.
	var first *x509svid.SVID
	for range 1000 {
		s := svidOf(t, ca, webID, 2*time.Hour)
		if s.Certificates[0].SerialNumber.Bytes()[0] < 0x10 {
			first = s
			break
		}
	}
	if first == nil {
		t.Fatal("no serial with a leading zero nibble in 1000 tries")
	}
	other := svidOf(t, ca, spiffeid.RequireFromString("spiffe://example.org/other"), time.Hour)

	iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
	w, n := newRecWriter(), newRecNotifier()
	logs := &testkit.Buffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := svidCfg("fake-push", w, notifierCfg(n, hostapi.ChangedX509))
	sc.SPIFFEID, sc.All = "", true // both SVIDs are delivered, first first
	cfg := &config.Config{
		DaemonMode: true,
		Issuers:    []config.Plugin{plugin("fake-push", iss)},
		SVIDs:      []config.SVID{sc},
	}
	a := agent.New(cfg, agent.WithHealthListener(ln), agent.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })

	iss.updates <- &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{first, other}, X509Bundles: bundleOf(ca)}
	ev := recv(t, n.events, "the delivery's event") // posted after the record
	if len(ev.X509) != 2 {
		t.Fatalf("delivered %d X509-SVIDs, want both", len(ev.X509))
	}

	leaf := first.Certificates[0]
	var rec struct {
		Msg      string    `json:"msg"`
		SPIFFEID string    `json:"spiffe_id"`
		Serial   string    `json:"serial"`
		NotAfter time.Time `json:"not_after"`
	}
	found := false
	for line := range strings.Lines(logs.String()) {
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "credentials delivered" {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no \"credentials delivered\" record in:\n%s", logs)
	}
	if want := hex.EncodeToString(leaf.SerialNumber.Bytes()); rec.Serial != want {
		t.Errorf("serial = %q, want %q", rec.Serial, want)
	}
	if rec.SPIFFEID != webID.String() {
		t.Errorf("spiffe_id = %q, want %q", rec.SPIFFEID, webID)
	}
	if !rec.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("not_after = %v, want the logged cert's own %v (the other SVID's is %v)", rec.NotAfter, leaf.NotAfter, other.Certificates[0].NotAfter)
	}
}
