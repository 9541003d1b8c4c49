package tlsconfig_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/files"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

// TestRotationUnderLoad runs a client loop handshaking with a server
// continuously while the agent's writer rotates the server's and the
// client's SVIDs, then their CA, many times. No handshake may fail, and
// after each rotation the server presents the new SVID.
func TestRotationUnderLoad(t *testing.T) {
	for _, layout := range []string{files.LayoutData, files.LayoutSPIFFEFS, files.LayoutFlat} {
		t.Run(layout, func(t *testing.T) {
			serverID := spiffeid.RequireFromPath(tdA, "/server")
			clientID := spiffeid.RequireFromPath(tdA, "/client")
			caOld := testca.New(t, tdA)

			serverDir, clientDir := t.TempDir(), t.TempDir()
			sw, cw := newWriter(t, serverDir, layout), newWriter(t, clientDir, layout)
			write(t, sw, caOld.X509SVID(t, serverID), caOld.X509Bundle())
			write(t, cw, caOld.X509SVID(t, clientID), caOld.X509Bundle())
			ssrc := newSource(t, tlsconfig.WithDir(serverDir))
			csrc := newSource(t, tlsconfig.WithDir(clientDir))

			srv := startServer(t, tlsconfig.ServerConfig(ssrc, tlsconfig.AuthorizeID(clientID)))
			cli := tlsconfig.ClientConfig(csrc, tlsconfig.AuthorizeID(serverID))

			var (
				stop       = make(chan struct{})
				done       = make(chan struct{})
				handshakes atomic.Int64
				errMu      sync.Mutex
				errs       []error
			)
			go func() {
				defer close(done)
				for i := 0; i < 100000; i++ { // bounded
					select {
					case <-stop:
						return
					default:
					}
					if _, err := dial(srv.addr(), cli); err != nil {
						errMu.Lock()
						errs = append(errs, err)
						errMu.Unlock()
					}
					handshakes.Add(1)
				}
			}()

			// rotate writes both SVIDs from ca with bundle, waits until
			// both Sources serve them, and checks the server presents the
			// new SVID.
			rotate := func(ca *testca.CA, bundle *x509bundle.Bundle) {
				t.Helper()
				s, c := ca.X509SVID(t, serverID), ca.X509SVID(t, clientID)
				write(t, sw, s, bundle)
				write(t, cw, c, bundle)
				waitUntil(t, ssrc, "the server's rotation is loaded", serialIs(ssrc, s.Certificates[0].SerialNumber))
				waitUntil(t, csrc, "the client's rotation is loaded", serialIs(csrc, c.Certificates[0].SerialNumber))
				waitUntil(t, ssrc, "the server's bundle is loaded", bundleIs(ssrc, bundle))
				waitUntil(t, csrc, "the client's bundle is loaded", bundleIs(csrc, bundle))
				got, err := dial(srv.addr(), cli)
				if err != nil {
					t.Fatalf("handshake after rotation: %v", err)
				}
				if got.Cmp(s.Certificates[0].SerialNumber) != 0 {
					t.Fatalf("server presented serial %x after rotation, want %x", got, s.Certificates[0].SerialNumber)
				}
			}

			// SVID rotations under one CA.
			for range 15 {
				rotate(caOld, caOld.X509Bundle())
			}
			// CA rotations, the way SPIRE does them: publish the new
			// CA beside the old one, then sign with it, then retire
			// the old one once nothing it signed is in use.
			ca := caOld
			for range 5 {
				next := testca.New(t, tdA)
				both := merge(tdA, ca.X509Bundle(), next.X509Bundle())
				rotate(ca, both)   // new CA trusted
				rotate(next, both) // new CA in use
				rotate(next, next.X509Bundle())
				ca = next
			}
			close(stop)
			<-done

			errMu.Lock()
			defer errMu.Unlock()
			if n := handshakes.Load(); n < 50 {
				t.Errorf("only %d handshakes ran during the rotations; the test proves little", n)
			}
			for _, err := range errs {
				t.Errorf("handshake failed during rotation: %v", err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for _, err := range srv.errs {
				t.Errorf("server handshake failed during rotation: %v", err)
			}
			t.Logf("%d handshakes, %d failures", handshakes.Load(), len(errs)+len(srv.errs))
		})
	}
}

func bundleIs(src *tlsconfig.Source, want *x509bundle.Bundle) func() bool {
	return func() bool {
		b, err := src.GetX509BundleForTrustDomain(want.TrustDomain())
		return err == nil && b.Equal(want)
	}
}
