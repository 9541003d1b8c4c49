package agent_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/internal/testca"
)

// Fake plugins for the core's unit tests. They register under "fake" IDs
// and are reached through a per-test handle stored in their config.

func init() {
	registry.Register(registry.Module{ID: "issuer.fake-pull", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) { return cfg.(*pullIssuer), nil }})
	registry.Register(registry.Module{ID: "issuer.fake-push", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) { return cfg.(*pushIssuer), nil }})
	registry.Register(registry.Module{ID: "issuer.fake-ownkeys", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) { return cfg.(*ownKeysIssuer), nil }})
	registry.Register(registry.Module{ID: "issuer.fake-rendezvous", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) { return cfg.(*rendezvousIssuer), nil }})
	registry.Register(registry.Module{ID: "writer.fake", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) { return cfg.(*recWriter), nil }})
	registry.Register(registry.Module{ID: "notifier.fake", NewConfig: func() any { return nil },
		New: func(cfg any, _ registry.Env) (any, error) { return cfg.(*recNotifier), nil }})
}

func newTestCA(t testing.TB, td string) *testca.CA {
	return testca.New(t, spiffeid.RequireTrustDomainFromString(td))
}

func bundleOf(ca *testca.CA) *x509bundle.Set { return x509bundle.NewSet(ca.X509Bundle()) }

func svidOf(t testing.TB, ca *testca.CA, id spiffeid.ID, ttl time.Duration) *x509svid.SVID {
	return ca.X509SVID(t, id, testca.WithTTL(ttl))
}

// pullIssuer signs the CSR of each request, or fails while failing is set.
type pullIssuer struct {
	t       testing.TB
	ca      *testca.CA
	ttl     time.Duration
	failing atomic.Bool
	calls   atomic.Int64
}

func (p *pullIssuer) Issue(_ context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	p.calls.Add(1)
	if p.failing.Load() {
		return nil, errors.New("backend down")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, err
	}
	chain := p.ca.Certify(p.t, req.SPIFFEID, csr.PublicKey, testca.WithTTL(p.ttl))
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{{ID: req.SPIFFEID, Certificates: chain}},
		X509Bundles: bundleOf(p.ca),
	}, nil
}

// rendezvousIssuer answers an X.509 request only once a JWT request has
// arrived (or its context ends), and answers JWT requests at once.
type rendezvousIssuer struct {
	pullIssuer
	once     sync.Once
	jwtAsked chan struct{}
}

func (r *rendezvousIssuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if len(req.JWT) == 0 {
		select {
		case <-r.jwtAsked:
		case <-ctx.Done():
			return nil, fmt.Errorf("no JWT request arrived while the X.509 one was open: %w", ctx.Err())
		}
		creds, err := r.pullIssuer.Issue(ctx, req)
		if err == nil && req.JWTBundles {
			creds.JWTBundles = jwtbundle.NewSet(r.ca.JWTBundle())
		}
		return creds, err
	}
	r.once.Do(func() { close(r.jwtAsked) })
	creds := &hostapi.Credentials{JWTBundles: jwtbundle.NewSet(r.ca.JWTBundle())}
	for _, jr := range req.JWT {
		creds.JWTSVIDs = append(creds.JWTSVIDs, hostapi.JWTSVID{Request: jr, SVID: r.ca.JWTSVID(r.t, req.SPIFFEID, jr.Audiences(), time.Hour)})
	}
	return creds, nil
}

// pushIssuer hands the updates sent on its channel to Watch.
type pushIssuer struct {
	updates chan *hostapi.Credentials
}

func (p *pushIssuer) Issue(context.Context, *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	return nil, errors.New("not used")
}

func (p *pushIssuer) Watch(ctx context.Context, _ *hostapi.IssueRequest, update func(*hostapi.Credentials), _ func(error)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-p.updates:
			update(c)
		}
	}
}

// ownKeysIssuer is a pushing issuer whose Issue answers with an SVID and
// a key of its own, as the Workload API does, and records the CSRs it was
// sent.
type ownKeysIssuer struct {
	pushIssuer
	t    testing.TB
	ca   *testca.CA
	mu   sync.Mutex
	csrs [][]byte
}

func (o *ownKeysIssuer) Issue(_ context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	o.mu.Lock()
	o.csrs = append(o.csrs, req.CSR)
	o.mu.Unlock()
	return &hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svidOf(o.t, o.ca, req.SPIFFEID, time.Hour)}, X509Bundles: bundleOf(o.ca)}, nil
}

// recWriter records what it was asked to write. While block is non-nil a
// Write waits on it; fail makes the next writes fail.
type recWriter struct {
	mu    sync.Mutex
	sets  []*hostapi.CredentialSet
	block chan struct{}
	fail  atomic.Int64 // number of writes still to fail
	wrote chan *hostapi.CredentialSet
}

func newRecWriter() *recWriter { return &recWriter{wrote: make(chan *hostapi.CredentialSet, 1000)} }

func (w *recWriter) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	w.mu.Lock()
	block := w.block
	w.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if w.fail.Load() > 0 {
		w.fail.Add(-1)
		return nil, errors.New("disk full")
	}
	w.mu.Lock()
	w.sets = append(w.sets, set)
	w.mu.Unlock()
	w.wrote <- set
	return &hostapi.WriteResult{Paths: []string{"/out/" + set.Name}}, nil
}

func (w *recWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sets)
}

// recNotifier records events; delay makes each Notify take that long
// (bounded by its context).
type recNotifier struct {
	events chan *hostapi.RotationEvent
	block  chan struct{}
	// failing is how many calls are still to fail; each failed call's
	// event goes to failed.
	failing atomic.Int64
	failed  chan *hostapi.RotationEvent
}

func newRecNotifier() *recNotifier {
	return &recNotifier{events: make(chan *hostapi.RotationEvent, 1000), failed: make(chan *hostapi.RotationEvent, 1000)}
}

func (n *recNotifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	if n.block != nil {
		select {
		case <-n.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if n.failing.Add(-1) >= 0 {
		n.failed <- ev
		return errors.New("consumer not ready")
	}
	n.failing.Store(0)
	n.events <- ev
	return nil
}

// recv waits for a value from ch, failing the test after a generous bound.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func plugin(name string, cfg any) config.Plugin {
	return config.Plugin{Name: name, Type: name, Config: cfg}
}

func newJWTBundles(t testing.TB, td string) *jwtbundle.Set {
	return jwtbundle.NewSet(newTestCA(t, td).JWTBundle())
}

// serialOf is s's serial as events and /status give it: hex of the bytes,
// leading zero kept (big.Int's Text(16) drops it one time in sixteen).
func serialOf(s *x509svid.SVID) string {
	return hex.EncodeToString(s.Certificates[0].SerialNumber.Bytes())
}
