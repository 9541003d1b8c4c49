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
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	registry.RegisterIssuer("workloadapi", DefaultConfig, func(c *Config, env registry.Env) (hostapi.Issuer, error) {
		return New(c, env.Logger)
	})
}

// Issuer gets credentials from a Workload API. It implements
// [hostapi.Issuer], [hostapi.Watcher] and io.Closer, and is safe for
// concurrent use: Issue may run while Watch does.
type Issuer struct {
	addr   string
	client *workloadapi.Client
	log    *slog.Logger

	// The shared streams of every Watch call (see stream.go), stopped by
	// cancel.
	x509, jwt *stream
	cancel    context.CancelFunc

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
	i := &Issuer{addr: addr, client: client, log: logger}
	var ctx context.Context
	ctx, i.cancel = context.WithCancel(context.Background())
	i.x509 = newStream(ctx, "watching X509-SVIDs", x509Update, x509Error, i.wrap,
		func(ctx context.Context, publish func(any), report func(error)) error {
			return client.WatchX509Context(ctx, x509Watcher{publish, report})
		})
	i.jwt = newStream(ctx, "watching JWT bundles", jwtBundlesUpdate, jwtBundlesError, i.wrap,
		func(ctx context.Context, publish func(any), report func(error)) error {
			return client.WatchJWTBundles(ctx, jwtBundleWatcher{publish, report})
		})
	return i, nil
}

// Address returns the address the issuer dials, as a URI.
func (i *Issuer) Address() string { return i.addr }

// Close stops the streams, ends every Watch call with an error, and closes
// the client. It is idempotent.
func (i *Issuer) Close() error {
	i.closeOnce.Do(func() {
		i.cancel()
		i.x509.close()
		i.jwt.close()
		i.closeErr = i.client.Close()
	})
	return i.closeErr
}

// Issue fetches what req asks for once: the X.509 context (selected per
// req), a JWT-SVID for each JWT request with all its audiences, and the JWT
// bundles.
func (i *Issuer) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	if req == nil {
		return nil, errors.New("issuing from the Workload API: nil request")
	}
	// The calls are independent: they run at once, as spiffe-helper's do,
	// so that a request costs one round trip to the SPIRE agent (each call
	// is attested on its own), not one per call.
	// The error returned is the first in the order X509, JWTs, bundles,
	// whatever order the calls failed in: one failure reads as it did
	// when the calls ran in a row.
	creds := &hostapi.Credentials{}
	var (
		wg      sync.WaitGroup
		jwtSVID = make([]hostapi.JWTSVID, len(req.JWT))
		errs    = make([]error, 2+len(req.JWT)) // X509, JWTs, bundles
	)
	if req.X509 {
		wg.Go(func() {
			x, err := i.client.FetchX509Context(ctx)
			if err != nil {
				errs[0] = i.wrap("fetching X509-SVIDs", err)
				return
			}
			svids, err := newX509Snapshot(x).selectFor(req)
			if err != nil {
				errs[0] = fmt.Errorf("selecting an X509-SVID: %w", err)
				return
			}
			creds.X509SVIDs, creds.X509Bundles = svids, x.Bundles
		})
	}
	for n, jr := range req.JWT {
		wg.Go(func() {
			svid, err := i.fetchJWTSVID(ctx, req, jr)
			if err != nil {
				errs[1+n] = err
				return
			}
			jwtSVID[n] = hostapi.JWTSVID{Request: jr, SVID: svid}
		})
	}
	if req.JWTBundles || len(req.JWT) > 0 {
		wg.Go(func() {
			b, err := i.client.FetchJWTBundles(ctx)
			if err != nil {
				errs[len(errs)-1] = i.wrap("fetching JWT bundles", err)
				return
			}
			creds.JWTBundles = b
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if len(jwtSVID) > 0 {
		creds.JWTSVIDs = jwtSVID
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

// Watch streams the X.509 context (when req.X509) and the JWT bundles
// (when req.JWTBundles or req.JWT is set), calling update with the X.509
// part selected per req or the JWT bundles alone, and report with every
// stream error and every selection error; go-spiffe retries with backoff
// meanwhile. Watch returns nil when ctx is done, the wrapped error of a
// stream that cannot be retried (InvalidArgument), or an error once the
// issuer is closed; it returns only after the goroutines it started or
// stopped have exited.
//
// The streams are shared by every Watch call of the issuer: one X.509
// context stream and one JWT bundles stream, started by the first caller
// and stopped when the last one returns. A caller that joins a running
// stream gets its latest state at once. update and report run on the
// calling goroutine, so they are never called concurrently for one call;
// they should return quickly (the agent's merge into its snapshot and a
// non-blocking wake-up of its worker do), though a slow caller delays only
// itself: it skips to the latest state of each stream. The credentials
// passed to update share their SVIDs and bundles with the other callers
// and must not be modified.
func (i *Issuer) Watch(ctx context.Context, req *hostapi.IssueRequest, update func(*hostapi.Credentials), report func(error)) error {
	if req == nil {
		return errors.New("watching the Workload API: nil request")
	}
	sub := newSubscriber()
	if req.X509 {
		r, err := i.x509.join(sub)
		if err != nil {
			return fmt.Errorf("watching the Workload API at %s: %w", i.addr, err)
		}
		defer i.x509.leave(sub, r)
	}
	if req.JWTBundles || len(req.JWT) > 0 {
		r, err := i.jwt.join(sub)
		if err != nil {
			return fmt.Errorf("watching the Workload API at %s: %w", i.addr, err)
		}
		defer i.jwt.leave(sub, r)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		}
		evs, fatal := sub.take()
		if ctx.Err() != nil {
			return nil
		}
		if fatal != nil {
			if errors.Is(fatal, errClosed) {
				return fmt.Errorf("watching the Workload API at %s: %w", i.addr, fatal)
			}
			return fatal
		}
		for _, ev := range evs {
			if ctx.Err() != nil {
				return nil
			}
			i.deliver(ev, req, update, report)
		}
	}
}

// deliver hands one event to a Watch caller.
func (i *Issuer) deliver(ev event, req *hostapi.IssueRequest, update func(*hostapi.Credentials), report func(error)) {
	switch ev.kind {
	case x509Update:
		snap := ev.val.(*x509Snapshot)
		svids, err := snap.selectFor(req)
		if err != nil {
			report(fmt.Errorf("selecting an X509-SVID from the Workload API at %s: %w", i.addr, err))
			return
		}
		update(&hostapi.Credentials{X509SVIDs: svids, X509Bundles: snap.bundles})
	case jwtBundlesUpdate:
		update(&hostapi.Credentials{JWTBundles: ev.val.(*jwtbundle.Set)})
	case x509Error, jwtBundlesError:
		report(ev.err)
	}
}

type x509Watcher struct {
	publish func(any)
	report  func(error)
}

func (x x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	x.publish(newX509Snapshot(c))
}

func (x x509Watcher) OnX509ContextWatchError(err error) { x.report(err) }

type jwtBundleWatcher struct {
	publish func(any)
	report  func(error)
}

func (j jwtBundleWatcher) OnJWTBundlesUpdate(b *jwtbundle.Set) { j.publish(b) }

func (j jwtBundleWatcher) OnJWTBundlesWatchError(err error) { j.report(err) }

// slogAdapter hands go-spiffe's client logs to slog at debug level: the
// errors it logs reach the core through report, which logs them once.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(format string, args ...any) { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Infof(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Warnf(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Debug(fmt.Sprintf(format, args...)) }
