package filewatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

func init() {
	registry.RegisterIssuer("files", DefaultConfig, func(c *Config, env registry.Env) (hostapi.Issuer, error) {
		return New(c, env.Logger)
	})
}

// errClosed is returned by a closed Issuer.
var errClosed = errors.New("the files issuer is closed")

// Issuer republishes the credentials found in a directory. It implements
// [hostapi.Issuer], [hostapi.Watcher] and io.Closer, and is safe for
// concurrent use: Issue may run while any number of Watch calls do.
type Issuer struct {
	p   parsed
	log *slog.Logger

	closing   chan struct{} // closed by Close
	closeOnce sync.Once

	mu      sync.Mutex
	closed  bool
	watches sync.WaitGroup // running Watch calls; Add only under mu
}

var (
	_ hostapi.Issuer  = (*Issuer)(nil)
	_ hostapi.Watcher = (*Issuer)(nil)
)

// New validates cfg and returns an issuer for its directory. It reads
// nothing: the directory may appear after the agent starts. A nil logger
// discards.
func New(cfg *Config, logger *slog.Logger) (*Issuer, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	logger.Debug("files issuer ready", "dir", p.dir, "cert_file", p.certFile, "key_file", p.keyFile, "bundle_file", p.bundleFile, "debounce", p.debounce)
	return &Issuer{p: p, log: logger, closing: make(chan struct{})}, nil
}

// Dir returns the absolute path of the watched directory.
func (i *Issuer) Dir() string { return i.p.dir }

// Close stops every running Watch and waits until they have returned. It
// is idempotent; afterwards Issue and Watch fail.
func (i *Issuer) Close() error {
	i.closeOnce.Do(func() {
		i.mu.Lock()
		i.closed = true
		close(i.closing)
		i.mu.Unlock()
		i.watches.Wait()
	})
	return nil
}

// Issue reads the directory once and returns its X509-SVID, with the
// private key, and the bundle of the leaf's trust domain. The files issuer
// owns its keys: it ignores req.CSR. A non-zero req.SPIFFEID must be the
// leaf's. It serves no JWT-SVIDs and no JWT bundles.
func (i *Issuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if req == nil {
		return nil, errors.New("issuing from the files issuer: nil request")
	}
	if err := i.check(ctx, req); err != nil {
		return nil, fmt.Errorf("issuing from the files issuer: %w", err)
	}
	if !req.X509 {
		return &hostapi.Credentials{}, nil
	}
	snap, err := i.p.load()
	if err == nil {
		err = checkID(snap, req)
	}
	if err != nil {
		return nil, fmt.Errorf("issuing from the files issuer in %q: %w", i.p.dir, err)
	}
	return snap.credentials(), nil
}

// check refuses what this issuer cannot serve.
func (i *Issuer) check(ctx context.Context, req *hostapi.IssueRequest) error {
	select {
	case <-i.closing:
		return errClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(req.JWT) > 0 || req.JWTBundles {
		return errors.New("it serves X.509 credentials only; remove the jwt blocks and jwt_bundles from the svid blocks that use it, or give them an issuer that mints JWT-SVIDs")
	}
	return nil
}

// checkID refuses a leaf that is not the identity asked for.
func checkID(snap *snapshot, req *hostapi.IssueRequest) error {
	if !req.SPIFFEID.IsZero() && snap.svid.ID != req.SPIFFEID {
		return fmt.Errorf("the certificate is for %q, not the requested %q; fix the svid block's spiffe_id or reissue the certificate", snap.svid.ID, req.SPIFFEID)
	}
	return nil
}

// credentials returns the snapshot as fresh Credentials.
func (s *snapshot) credentials() *hostapi.Credentials {
	svid := *s.svid
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{&svid},
		X509Bundles: x509bundle.NewSet(s.bundle.Clone()),
	}
}
