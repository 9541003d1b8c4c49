package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/files"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

var (
	tdA = spiffeid.RequireTrustDomainFromString("a.example")
	tdB = spiffeid.RequireTrustDomainFromString("b.example")
)

// newWriter returns the agent's real files writer for dir in layout.
func newWriter(t *testing.T, dir, layout string, mod ...func(*files.Config)) *files.Writer {
	t.Helper()
	cfg := files.DefaultConfig()
	cfg.Dir = dir
	cfg.Layout = layout
	for _, m := range mod {
		m(cfg)
	}
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatalf("files.New: %v", err)
	}
	return w
}

// write delivers svid with bundles through w, as the agent does.
func write(t *testing.T, w *files.Writer, svid *x509svid.SVID, bundles ...*x509bundle.Bundle) {
	t.Helper()
	set := &hostapi.CredentialSet{
		Name:        "test",
		TrustDomain: svid.ID.TrustDomain(),
		Credentials: hostapi.Credentials{
			X509SVIDs:   []*x509svid.SVID{svid},
			X509Bundles: x509bundle.NewSet(bundles...),
		},
		Changed: hostapi.ChangedX509,
	}
	if _, err := w.Write(context.Background(), set); err != nil {
		t.Fatalf("writing credentials: %v", err)
	}
}

// merge returns one bundle of td holding every authority of bs.
func merge(td spiffeid.TrustDomain, bs ...*x509bundle.Bundle) *x509bundle.Bundle {
	out := x509bundle.New(td)
	for _, b := range bs {
		for _, c := range b.X509Authorities() {
			out.AddX509Authority(c)
		}
	}
	return out
}

func newSource(t *testing.T, opts ...tlsconfig.Option) *tlsconfig.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := tlsconfig.NewSource(ctx, append([]tlsconfig.Option{tlsconfig.WithDebounce(10 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// waitUntil waits, on src's Updated signal, until cond holds.
func waitUntil(t *testing.T, src *tlsconfig.Source, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-src.Updated():
		case <-deadline.C:
			t.Fatalf("timed out waiting until %s (last reload error: %v)", what, src.Err())
		}
	}
}

func serialIs(src *tlsconfig.Source, want *big.Int) func() bool {
	return func() bool {
		s, err := src.GetX509SVID()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(want) == 0
	}
}

// server is a real TLS server on 127.0.0.1 that completes each handshake,
// writes one byte and closes, recording server-side handshake errors.
type server struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
	// results receives each handshake's outcome (nil for success), when
	// there is room.
	results chan error
}

func startServer(t *testing.T, cfg *tls.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, results: make(chan error, 1<<12)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				err := tc.Handshake()
				if err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, err)
					s.mu.Unlock()
				}
				select {
				case s.results <- err:
				default:
				}
				if err == nil {
					_, _ = tc.Write([]byte{1})
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// result returns the outcome of the server's next handshake.
func (s *server) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.results:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the server's handshake")
		return nil
	}
}

// dial handshakes with the server and waits for its byte, so that a client
// certificate the server rejects is an error here too (TLS 1.3 reports it
// only on the first read). It returns the server's leaf serial.
func dial(addr string, cfg *tls.Config) (*big.Int, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	if b[0] != 1 {
		return nil, errors.New("unexpected byte from server")
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}
