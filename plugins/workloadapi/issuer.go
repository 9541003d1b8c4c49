package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	registry.Register(registry.Module{
		ID:        "issuer.workloadapi",
		NewConfig: func() any { return DefaultConfig() },
		New: func(cfg any, env registry.Env) (any, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("building issuer.workloadapi: config is %T, want *workloadapi.Config", cfg)
			}
			return New(c, env.Logger)
		},
	})
}

// Issuer gets credentials from a Workload API. It implements
// [hostapi.Issuer], [hostapi.Watcher] and io.Closer, and is safe for
// concurrent use: Issue may run while Watch does.
type Issuer struct {
	addr   string
	client *workloadapi.Client
	log    *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

var (
	_ hostapi.Issuer  = (*Issuer)(nil)
	_ hostapi.Watcher = (*Issuer)(nil)
)

// New validates cfg and returns an issuer for its address. It does not
// connect: the first call does, so that the agent may start after the
// issuer. opts are passed to go-spiffe's client after the issuer's own
// (tests shorten the retry backoff with workloadapi.WithBackoffStrategy).
// A nil logger discards.
func New(cfg *Config, logger *slog.Logger, opts ...workloadapi.ClientOption) (*Issuer, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addr, err := cfg.ResolvedAddress()
	if err != nil {
		return nil, fmt.Errorf("resolving the Workload API address: %w", err)
	}
	all := append([]workloadapi.ClientOption{
		workloadapi.WithAddr(addr),
		workloadapi.WithLogger(slogAdapter{logger}),
	}, opts...)
	// workloadapi.New dials lazily; the context bounds nothing that blocks.
	client, err := workloadapi.New(context.Background(), all...)
	if err != nil {
		return nil, fmt.Errorf("creating the Workload API client for %s: %w", addr, err)
	}
	logger.Debug("workload API issuer ready", "address", addr)
	return &Issuer{addr: addr, client: client, log: logger}, nil
}

// Address returns the address the issuer dials, as a URI.
func (i *Issuer) Address() string { return i.addr }

// Close closes the client. It is idempotent.
func (i *Issuer) Close() error {
	i.closeOnce.Do(func() { i.closeErr = i.client.Close() })
	return i.closeErr
}

// Issue fetches what req asks for once: the X.509 context (selected per
// req), a JWT-SVID for each JWT request with all its audiences, and the JWT
// bundles.
func (i *Issuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if req == nil {
		return nil, errors.New("issuing from the Workload API: nil request")
	}
	creds := &hostapi.Credentials{}
	if req.X509 {
		x, err := i.client.FetchX509Context(ctx)
		if err != nil {
			return nil, i.wrap("fetching X509-SVIDs", err)
		}
		svids, err := selectX509SVIDs(x.SVIDs, req)
		if err != nil {
			return nil, fmt.Errorf("selecting an X509-SVID: %w", err)
		}
		creds.X509SVIDs, creds.X509Bundles = svids, x.Bundles
	}
	for _, jr := range req.JWT {
		svid, err := i.fetchJWTSVID(ctx, req, jr)
		if err != nil {
			return nil, err
		}
		creds.JWTSVIDs = append(creds.JWTSVIDs, hostapi.JWTSVID{Request: jr, SVID: svid})
	}
	if req.JWTBundles || len(req.JWT) > 0 {
		b, err := i.client.FetchJWTBundles(ctx)
		if err != nil {
			return nil, i.wrap("fetching JWT bundles", err)
		}
		creds.JWTBundles = b
	}
	return creds, nil
}

func (i *Issuer) fetchJWTSVID(ctx context.Context, req *hostapi.IssueRequest, jr hostapi.JWTRequest) (*jwtsvid.SVID, error) {
	what := fmt.Sprintf("fetching a JWT-SVID for audience %q", jr.Audiences())
	params := jwtsvid.Params{Audience: jr.Audience, ExtraAudiences: jr.ExtraAudiences, Subject: req.SPIFFEID}
	if !req.SPIFFEID.IsZero() || req.Hint == "" {
		svid, err := i.client.FetchJWTSVID(ctx, params)
		if err != nil {
			return nil, i.wrap(what, err)
		}
		return svid, nil
	}
	// Select by hint, as for X509-SVIDs.
	svids, err := i.client.FetchJWTSVIDs(ctx, params)
	if err != nil {
		return nil, i.wrap(what, err)
	}
	hints := make([]string, 0, len(svids))
	for _, s := range svids {
		if s.Hint == req.Hint {
			return s, nil
		}
		hints = append(hints, fmt.Sprintf("%q", s.Hint))
	}
	return nil, fmt.Errorf("%s: no JWT-SVID with hint %q among [%s]; check hint", what, req.Hint, strings.Join(hints, ", "))
}

// wrap adds context to a Workload API error, and a next step to the ones an
// operator can act on.
func (i *Issuer) wrap(what string, err error) error {
	switch status.Code(err) {
	case codes.Unavailable:
		return fmt.Errorf("%s from the Workload API at %s: %w; check that the agent is running and the socket path is right", what, i.addr, err)
	case codes.PermissionDenied:
		return fmt.Errorf("%s from the Workload API at %s: %w; check that a registration entry matches this workload", what, i.addr, err)
	}
	return fmt.Errorf("%s from the Workload API at %s: %w", what, i.addr, err)
}

// selectX509SVIDs picks the X509-SVIDs req asks for among those offered, in
// the order offered: all of them with req.All; else the first whose SPIFFE
// ID equals req.SPIFFEID (and whose hint equals req.Hint, when both are
// set); else the first whose hint equals req.Hint; else the first.
func selectX509SVIDs(svids []*x509svid.SVID, req *hostapi.IssueRequest) ([]*x509svid.SVID, error) {
	if len(svids) == 0 {
		return nil, errors.New("the Workload API offered no X509-SVID; check the workload's registration entries")
	}
	if req.All {
		return svids, nil
	}
	for _, s := range svids {
		if (req.SPIFFEID.IsZero() || s.ID == req.SPIFFEID) && (req.Hint == "" || s.Hint == req.Hint) {
			return []*x509svid.SVID{s}, nil
		}
	}
	var offered []string
	for _, s := range svids {
		if s.Hint != "" {
			offered = append(offered, fmt.Sprintf("%s (hint %q)", s.ID, s.Hint))
		} else {
			offered = append(offered, s.ID.String())
		}
	}
	list := strings.Join(offered, ", ")
	switch {
	case !req.SPIFFEID.IsZero() && req.Hint != "":
		return nil, fmt.Errorf("no X509-SVID with SPIFFE ID %q and hint %q among [%s]; check spiffe_id and hint", req.SPIFFEID, req.Hint, list)
	case !req.SPIFFEID.IsZero():
		return nil, fmt.Errorf("no X509-SVID with SPIFFE ID %q among [%s]; check spiffe_id", req.SPIFFEID, list)
	default:
		return nil, fmt.Errorf("no X509-SVID with hint %q among [%s]; check hint", req.Hint, list)
	}
}

// Watch streams the X.509 context (when req.X509) and the JWT bundles
// (when req.JWTBundles or req.JWT is set) over one client, calling update
// with the X.509 part or the JWT bundles alone, and report with every
// stream error; go-spiffe retries with backoff meanwhile. update and
// report are never called concurrently. Watch returns nil when ctx is
// done, after every goroutine it started has exited, or the error of a
// stream that cannot be retried (InvalidArgument).
func (i *Issuer) Watch(ctx context.Context, req *hostapi.IssueRequest, update func(*hostapi.Credentials), report func(error)) error {
	if req == nil {
		return errors.New("watching the Workload API: nil request")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &watcher{i: i, ctx: ctx, req: req, update: update, report: report}

	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		fatalErr error
	)
	run := func(what string, f func() error) {
		wg.Go(func() {
			err := f()
			if ctx.Err() != nil {
				return
			}
			// go-spiffe gives up only on errors it cannot retry.
			errMu.Lock()
			if fatalErr == nil {
				fatalErr = i.wrap(what, err)
			}
			errMu.Unlock()
			cancel()
		})
	}
	if req.X509 {
		run("watching X509-SVIDs", func() error { return i.client.WatchX509Context(ctx, x509Watcher{w}) })
	}
	if req.JWTBundles || len(req.JWT) > 0 {
		run("watching JWT bundles", func() error { return i.client.WatchJWTBundles(ctx, jwtBundleWatcher{w}) })
	}
	<-ctx.Done()
	wg.Wait()
	return fatalErr
}

// watcher serialises the callbacks of one Watch call.
type watcher struct {
	i      *Issuer
	ctx    context.Context
	req    *hostapi.IssueRequest
	mu     sync.Mutex
	update func(*hostapi.Credentials)
	report func(error)
}

func (w *watcher) deliver(c *hostapi.Credentials) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() == nil {
		w.update(c)
	}
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Cancellation by our own ctx is no failure.
	if w.ctx.Err() == nil && err != nil {
		w.report(err)
	}
}

type x509Watcher struct{ w *watcher }

func (x x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	svids, err := selectX509SVIDs(c.SVIDs, x.w.req)
	if err != nil {
		x.w.fail(fmt.Errorf("selecting an X509-SVID from the Workload API at %s: %w", x.w.i.addr, err))
		return
	}
	x.w.deliver(&hostapi.Credentials{X509SVIDs: svids, X509Bundles: c.Bundles})
}

func (x x509Watcher) OnX509ContextWatchError(err error) {
	x.w.fail(x.w.i.wrap("watching X509-SVIDs", err))
}

type jwtBundleWatcher struct{ w *watcher }

func (j jwtBundleWatcher) OnJWTBundlesUpdate(b *jwtbundle.Set) {
	j.w.deliver(&hostapi.Credentials{JWTBundles: b})
}

func (j jwtBundleWatcher) OnJWTBundlesWatchError(err error) {
	j.w.fail(j.w.i.wrap("watching JWT bundles", err))
}

// slogAdapter hands go-spiffe's client logs to slog at debug level: the
// errors it logs reach the core through report, which logs them once.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(format string, args ...any) { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Infof(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Warnf(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Debug(fmt.Sprintf(format, args...)) }
