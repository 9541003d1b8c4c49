package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/plugins/files"
)

// BenchmarkRotation measures the rotation path in-process: an update pushed
// by the issuer, verified, written by the real files writer (atomic
// replacement with fsync), and announced to a notifier. One op is one
// rotation, from update to notification.
func BenchmarkRotation(b *testing.B) {
	for _, layout := range []string{files.LayoutFlat, files.LayoutData} {
		b.Run(layout, func(b *testing.B) {
			ca := newTestCA(b, "example.org")
			iss := &pushIssuer{updates: make(chan *hostapi.Credentials)}
			fc := files.DefaultConfig()
			fc.Dir = b.TempDir()
			fc.Layout = layout
			n := newRecNotifier()
			cfg := &config.Config{
				DaemonMode: true,
				Issuers:    []config.Plugin{plugin("fake-push", iss)},
				SVIDs: []config.SVID{{
					Name: "web", Issuer: "fake-push", SPIFFEID: webID.String(), X509: true,
					Writers:   []config.Plugin{{Name: "files", Type: "files", Config: fc}},
					Notifiers: []config.Notifier{notifierCfg(n, hostapi.ChangedX509)},
				}},
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- agent.New(cfg).Run(ctx) }()
			defer func() { cancel(); <-done }()

			// Pre-mint the SVIDs: minting is the issuer's cost, not the
			// rotation path's.
			svids := make([]*x509svid.SVID, b.N+1)
			for i := range svids {
				svids[i] = svidOf(b, ca, webID, time.Hour)
			}
			bundle := bundleOf(ca)
			iss.updates <- &hostapi.Credentials{X509SVIDs: svids[:1], X509Bundles: bundle}
			recv(b, n.events, "initial rotation")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				iss.updates <- &hostapi.Credentials{X509SVIDs: svids[i : i+1]}
				recv(b, n.events, "rotation")
			}
		})
	}
}
