package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/metrics"
)

// output is one writer of an svid block and what it last delivered.
type output struct {
	name   string
	writer hostapi.Writer

	// Guarded by svidRunner.mu.
	written   bool      // delivered at least once by this process
	lastWrite time.Time // last success
	lastErr   error     // nil after a success
	spiffeID  string
	serial    string
	notAfter  time.Time // earliest expiry among what it delivered
	paths     []string
	// behind is set when a delivery passed the writer by because its
	// plugin was still starting: it gets the current snapshot once ready.
	behind bool
}

// svidRunner keeps one svid block fresh: its sources merge updates into a
// snapshot, and its worker delivers the latest snapshot to the writers and
// then the notifiers. Updates that arrive while the worker is busy coalesce.
type svidRunner struct {
	a         *Agent
	cfg       config.SVID // with defaults applied
	src       config.SVID // as configured, to compare at a reload
	id        spiffeid.ID
	issuer    hostapi.Issuer
	outputs   []*output
	notifiers []*notifierRunner
	log       *slog.Logger

	wake chan struct{} // buffered 1; a send never blocks

	loops  loops              // this runner's goroutines
	cancel context.CancelFunc // stops them; set by startRunner

	mu        sync.Mutex
	cur       hostapi.Credentials
	pending   hostapi.Changes
	delivered bool
	issuerErr error
	lastErr   error // selection or verification failure of the latest snapshot
	lastRot   time.Time
	lastX509  []hostapi.X509Identity // what the last delivery carried, for status
	lastJWT   []hostapi.JWTIdentity
	replay    bool                 // the snapshot was carried over by a reload: see carry
	catchUp   bool                 // a writer's plugin became ready: see pluginReady
	renew     map[string]time.Time // next renewal of each pull loop ("x509", "jwt")
}

func (r *svidRunner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// update merges an issuer's (possibly partial) credentials into the
// snapshot and wakes the worker if anything changed.
func (r *svidRunner) update(c *hostapi.Credentials) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ch hostapi.Changes
	if c.X509SVIDs != nil {
		if r.cur.X509SVIDs == nil || !sameX509SVIDs(r.cur.X509SVIDs, c.X509SVIDs) {
			ch |= hostapi.ChangedX509
		}
		r.cur.X509SVIDs = c.X509SVIDs
	}
	if c.X509Bundles != nil {
		if !sameX509Bundles(r.cur.X509Bundles, c.X509Bundles) {
			ch |= hostapi.ChangedX509
		}
		r.cur.X509Bundles = c.X509Bundles
	}
	if c.JWTSVIDs != nil {
		merged := make([]hostapi.JWTSVID, 0, len(r.cfg.JWT))
		for _, req := range r.cfg.JWT {
			var pick *hostapi.JWTSVID
			for i := range c.JWTSVIDs {
				if c.JWTSVIDs[i].Request.Key() == req.Key() {
					pick = &c.JWTSVIDs[i]
				}
			}
			if pick == nil {
				for i := range r.cur.JWTSVIDs {
					if r.cur.JWTSVIDs[i].Request.Key() == req.Key() {
						pick = &r.cur.JWTSVIDs[i]
					}
				}
			}
			if pick != nil && pick.SVID != nil {
				merged = append(merged, hostapi.JWTSVID{Request: req, SVID: pick.SVID})
			}
		}
		r.cur.JWTSVIDs = merged
		ch |= hostapi.ChangedJWTSVID
	}
	if c.JWTBundles != nil {
		if !sameJWTBundles(r.cur.JWTBundles, c.JWTBundles) {
			ch |= hostapi.ChangedJWTBundle
		}
		r.cur.JWTBundles = c.JWTBundles
	}
	if r.issuerErr != nil {
		r.a.metrics.IssuerFailing(r.cfg.Name, false)
	}
	r.issuerErr = nil
	if ch != 0 {
		r.pending |= ch
		r.signal()
	}
}

// reportIssuerErr records an issuer failure for status; the last good
// credentials stay in place.
func (r *svidRunner) reportIssuerErr(err error) {
	r.log.Warn("issuer failed; keeping the last good credentials", "error", err)
	r.a.metricsErr(r.cfg.Name, metrics.StageIssue)
	r.a.metrics.IssuerFailing(r.cfg.Name, true)
	r.mu.Lock()
	r.issuerErr = err
	r.mu.Unlock()
}

// complete reports whether the snapshot holds everything the block wants;
// nothing is delivered before it does.
func (r *svidRunner) completeLocked() bool {
	if r.cfg.X509 && (r.cur.X509SVIDs == nil || r.cur.X509Bundles == nil) {
		return false
	}
	if len(r.cur.JWTSVIDs) < len(r.cfg.JWT) {
		return false
	}
	if r.cfg.JWTBundles && r.cur.JWTBundles == nil {
		return false
	}
	return true
}

// allChanges is what the first delivery reports.
func (r *svidRunner) allChanges() hostapi.Changes {
	var ch hostapi.Changes
	if r.cfg.X509 {
		ch |= hostapi.ChangedX509
	}
	if len(r.cfg.JWT) > 0 {
		ch |= hostapi.ChangedJWTSVID
	}
	if r.cfg.JWTBundles {
		ch |= hostapi.ChangedJWTBundle
	}
	return ch
}

// pluginReady is called when the plugin of one of r's writers ended its
// start: the worker then delivers the current snapshot to the writers it
// passed by (output.behind).
func (r *svidRunner) pluginReady() {
	r.mu.Lock()
	r.catchUp = true
	r.mu.Unlock()
	r.signal()
}

// take returns the snapshot and its changes when there is something
// complete to deliver. With catchUp, there are no changes: the snapshot
// goes to the writers that are behind only.
func (r *svidRunner) take() (_ hostapi.Credentials, _ hostapi.Changes, catchUp, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	catchUp, r.catchUp = r.catchUp, false
	if !r.completeLocked() {
		return hostapi.Credentials{}, 0, false, false
	}
	if r.pending != 0 {
		snap, ch := r.cur, r.pending
		r.pending = 0
		return snap, ch, false, true
	}
	if catchUp && slices.ContainsFunc(r.outputs, func(o *output) bool { return o.behind }) {
		return r.cur, 0, true, true
	}
	return hostapi.Credentials{}, 0, false, false
}

// work is the worker loop: it delivers the latest complete snapshot each
// time it is woken, and retries failed writes with backoff.
func (r *svidRunner) work(ctx context.Context, l *loop) {
	bo := backoff{min: r.a.retryMin, max: r.a.retryMax}
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-retry:
			retry = nil
		}
		snap, ch, catchUp, ok := r.take()
		if !ok {
			continue
		}
		l.busy()
		failed := r.deliver(ctx, snap, ch, catchUp)
		l.idle()
		if failed {
			// Deliver the same changes again later; a newer snapshot that
			// arrives meanwhile supersedes them.
			r.mu.Lock()
			r.pending |= ch
			r.catchUp = r.catchUp || catchUp
			r.mu.Unlock()
			retry = time.After(bo.next())
		} else {
			bo.reset()
		}
	}
}

// deliver verifies the snapshot, writes it with every writer, then hands
// the rotation event to the notifiers. It reports whether a writer failed.
// A writer whose plugin has not started is passed by, and is not a
// failure: it gets the snapshot once ready (pluginReady), by a delivery
// with catchUp, which writes to the writers that are behind only and
// notifies only notifiers that were never notified.
func (r *svidRunner) deliver(ctx context.Context, snap hostapi.Credentials, ch hostapi.Changes, catchUp bool) (failed bool) {
	start := time.Now()
	if catchUp {
		ch = r.allChanges()
	}
	set := &hostapi.CredentialSet{Name: r.cfg.Name, Changed: ch}
	set.JWTSVIDs = snap.JWTSVIDs
	set.JWTBundles = snap.JWTBundles
	set.X509Bundles = snap.X509Bundles
	if r.cfg.X509 {
		svids, err := selectX509(snap.X509SVIDs, r.id, r.cfg.Hint, r.cfg.All)
		if err == nil {
			err = verifyX509(svids, snap.X509Bundles)
		}
		if err != nil {
			r.log.Error("refusing to deliver credentials", "error", err)
			r.a.metricsErr(r.cfg.Name, metrics.StageVerify)
			r.mu.Lock()
			r.lastErr = err
			r.mu.Unlock()
			return false
		}
		set.X509SVIDs = svids
		set.TrustDomain = svids[0].ID.TrustDomain()
	} else if len(snap.JWTSVIDs) > 0 {
		set.TrustDomain = snap.JWTSVIDs[0].SVID.ID.TrustDomain()
	}

	type result struct {
		res  *hostapi.WriteResult
		err  error
		skip bool
	}
	results := make([]result, len(r.outputs))
	r.mu.Lock()
	replay := r.replay
	r.replay = false
	r.mu.Unlock()
	var wg sync.WaitGroup
	for i, o := range r.outputs {
		r.mu.Lock()
		oset := *set
		if !o.written || o.behind {
			oset.Changed = r.allChanges()
		}
		// A writer kept by a reload already holds a replayed snapshot; a
		// catch-up is for the writers behind only.
		skip := (replay && o.written) || (catchUp && !o.behind)
		r.mu.Unlock()
		if skip {
			results[i] = result{skip: true}
			continue
		}
		write := func() {
			// A write that has begun finishes even when the agent is
			// stopping, so that shutdown never interrupts a delivery.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.a.writeTimeout)
			defer cancel()
			wstart := time.Now()
			res, err := o.writer.Write(wctx, &oset)
			r.a.metrics.WriteDuration(r.cfg.Name, o.name, time.Since(wstart))
			if err == nil && res == nil {
				res = &hostapi.WriteResult{}
			}
			results[i] = result{res: res, err: err}
		}
		// The outputs write at once; the last one on this goroutine, so
		// that a block with one output (spiffe-helper's case) hands its
		// rotation to no other goroutine.
		if i == len(r.outputs)-1 {
			write()
			continue
		}
		wg.Go(write)
	}
	wg.Wait()
	writeDur := time.Since(start)

	x509IDs := x509Identities(set.X509SVIDs)
	jwtIDs := jwtIdentities(set.JWTSVIDs)
	spiffeID, serial, notAfter := summarize(x509IDs, jwtIDs)

	now := time.Now()
	var paths []string
	ok, wrote := 0, 0 // delivered (or kept by a reload), written now
	r.mu.Lock()
	for i, o := range r.outputs {
		if results[i].skip {
			ok++
			paths = append(paths, o.paths...)
			continue
		}
		if ns := (*notStartedError)(nil); errors.As(results[i].err, &ns) {
			o.lastErr, o.behind = ns, ns.pending()
			continue
		}
		if err := results[i].err; err != nil {
			failed = true
			o.lastErr = err
			r.log.Error("writing credentials failed; the previous files are intact and the write will be retried",
				"writer", o.name, "error", err, "serial", serial)
			r.a.metricsErr(r.cfg.Name, metrics.StageWrite)
			continue
		}
		ok++
		wrote++
		o.written, o.lastWrite, o.lastErr, o.behind = true, now, nil, false
		o.spiffeID, o.serial, o.notAfter = spiffeID, serial, notAfter
		o.paths = results[i].res.Paths
		paths = append(paths, results[i].res.Paths...)
	}
	r.lastErr = nil
	initial := !r.delivered
	if catchUp && (wrote == 0 || !initial) {
		// Nothing new, or the rotation that was delivered and notified
		// before, now in the writers that were starting too.
		r.mu.Unlock()
		if wrote > 0 {
			logID, logSerial, logNotAfter := loggedIdentity(set)
			r.log.Info("caught up the writers whose plugin finished starting", "spiffe_id", logID, "serial", logSerial,
				"not_after", logNotAfter, "writers", wrote, "duration", writeDur)
		}
		return failed
	}
	if ok > 0 {
		r.delivered = true
		r.lastRot = now
		r.lastX509, r.lastJWT = x509IDs, jwtIDs
	}
	r.mu.Unlock()
	if ok == 0 {
		return failed
	}
	r.a.metrics.Rotation(r.cfg.Name)
	r.a.metrics.SVIDExpiry(r.cfg.Name, x509Expiries(x509IDs), jwtExpiries(jwtIDs))
	logID, logSerial, logNotAfter := loggedIdentity(set)
	r.log.Info("credentials delivered", "changed", ch.String(), "spiffe_id", logID, "serial", logSerial,
		"not_after", logNotAfter, "writers", ok, "duration", writeDur)
	if r.a.onDelivery != nil {
		r.a.onDelivery(r.cfg.Name)
	}
	if initial {
		r.a.delivered.Store(true)
		r.a.maybeSettled()
	}

	ev := &hostapi.RotationEvent{
		Name:    r.cfg.Name,
		Reason:  ch,
		Initial: initial,
		Time:    now,
		X509:    x509IDs,
		JWT:     jwtIDs,
		Paths:   paths,
	}
	for _, n := range r.notifiers {
		if replay || catchUp {
			n.postFirst(ev) // a notifier kept by a reload has seen it
		} else {
			n.post(ev)
		}
	}
	return failed
}

// loggedIdentity picks what the "credentials delivered" record names: the
// first X509-SVID's (else the first JWT-SVID's) SPIFFE ID, its serial as
// openssl prints it (two hex digits a byte, so a leading zero stays) and
// that credential's own not_after.
func loggedIdentity(set *hostapi.CredentialSet) (id, serial string, notAfter time.Time) {
	if len(set.X509SVIDs) > 0 && len(set.X509SVIDs[0].Certificates) > 0 {
		leaf := set.X509SVIDs[0].Certificates[0]
		return set.X509SVIDs[0].ID.String(), serialHex(leaf), leaf.NotAfter
	}
	if len(set.JWTSVIDs) > 0 && set.JWTSVIDs[0].SVID != nil {
		return set.JWTSVIDs[0].SVID.ID.String(), "", set.JWTSVIDs[0].SVID.Expiry
	}
	return "", "", time.Time{}
}

// summarize picks what status shows for an output: the default identity and
// the earliest expiry among everything delivered.
func summarize(x []hostapi.X509Identity, j []hostapi.JWTIdentity) (id, serial string, notAfter time.Time) {
	for _, s := range x {
		if id == "" {
			id, serial = s.SPIFFEID, s.Serial
		}
		if notAfter.IsZero() || s.NotAfter.Before(notAfter) {
			notAfter = s.NotAfter
		}
	}
	for _, s := range j {
		if id == "" {
			id = s.SPIFFEID
		}
		if notAfter.IsZero() || s.Expiry.Before(notAfter) {
			notAfter = s.Expiry
		}
	}
	return id, serial, notAfter
}

// watchSource runs a pushing issuer's Watch until ctx is done, restarting
// it with backoff if it gives up.
func (r *svidRunner) watchSource(ctx context.Context, w hostapi.Watcher, req *hostapi.IssueRequest) {
	bo := backoff{min: r.a.retryMin, max: r.a.retryMax}
	for ctx.Err() == nil {
		err := w.Watch(ctx, req, r.update, r.reportIssuerErr)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("watch ended unexpectedly")
		}
		r.reportIssuerErr(fmt.Errorf("watching issuer %q: %w", r.cfg.Issuer, err))
		wait := bo.next()
		r.a.metrics.IssuerBackoff(r.cfg.Name, true, wait)
		sleepCtx(ctx, wait)
	}
}

// pull calls issue until ctx is done: after a success it delivers the
// credentials and waits until the renewal time issue returned, after a
// failure it backs off.
func (r *svidRunner) pull(ctx context.Context, l *loop, key string, issue func(context.Context) (*hostapi.Credentials, time.Time, error)) {
	bo := backoff{min: r.a.retryMin, max: r.a.retryMax}
	// A runner rebuilt by a reload resumes its predecessor's schedule
	// (see carry) instead of issuing at once.
	r.mu.Lock()
	at, resumed := r.renew[key]
	r.mu.Unlock()
	if resumed && !sleepCtx(ctx, time.Until(at)) {
		return
	}
	for {
		l.busy()
		creds, next, err := issue(ctx)
		l.idle()
		if ctx.Err() != nil {
			return
		}
		wait := time.Until(next)
		if err != nil {
			r.reportIssuerErr(err)
			wait = bo.next()
			r.a.metrics.IssuerBackoff(r.cfg.Name, true, wait)
		} else {
			bo.reset()
			r.update(creds)
			r.mu.Lock()
			if r.renew == nil {
				r.renew = map[string]time.Time{}
			}
			r.renew[key] = next
			r.mu.Unlock()
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// pullX509 renews X509-SVIDs from a signing issuer at the configured
// fraction of their lifetime. Each renewal uses a fresh key.
func (r *svidRunner) pullX509(ctx context.Context, l *loop, withJWTBundles bool) {
	r.pull(ctx, l, "x509", func(ctx context.Context) (*hostapi.Credentials, time.Time, error) {
		creds, err := r.issueX509(ctx, withJWTBundles)
		if err != nil {
			return nil, time.Time{}, err
		}
		return creds, r.renewAtX509(creds.X509SVIDs), nil
	})
}

func (r *svidRunner) issueX509(ctx context.Context, withJWTBundles bool) (*hostapi.Credentials, error) {
	// A pushing issuer (the Workload API, files on disk) owns its keys:
	// Watch has no request to sign, and Issue ignores a CSR. Generating
	// one for it would cost a one-shot a key and a signature for nothing.
	var key crypto.Signer
	var csr []byte
	if _, push := r.issuer.(hostapi.Watcher); !push {
		var err error
		if key, csr, err = newKeyAndCSR(r.id); err != nil {
			return nil, err
		}
	}
	req := &hostapi.IssueRequest{
		SPIFFEID:   r.id,
		Hint:       r.cfg.Hint,
		All:        r.cfg.All,
		X509:       true,
		CSR:        csr,
		TTL:        r.cfg.TTL,
		JWTBundles: withJWTBundles,
	}
	ictx, cancel := context.WithTimeout(ctx, r.a.issueTimeout)
	defer cancel()
	creds, err := r.issuer.Issue(ictx, req)
	if err != nil {
		return nil, fmt.Errorf("issuing X509-SVID from %q: %w", r.cfg.Issuer, err)
	}
	if creds == nil || len(creds.X509SVIDs) == 0 || creds.X509Bundles == nil {
		return nil, fmt.Errorf("issuing X509-SVID from %q: the issuer returned no X509-SVID or no bundle", r.cfg.Issuer)
	}
	if creds.X509SVIDs, err = attachKey(creds.X509SVIDs, key); err != nil {
		return nil, fmt.Errorf("issuing X509-SVID from %q: %w", r.cfg.Issuer, err)
	}
	if withJWTBundles && creds.JWTBundles == nil {
		return nil, fmt.Errorf("issuing from %q: the issuer returned no JWT bundle", r.cfg.Issuer)
	}
	return &hostapi.Credentials{X509SVIDs: creds.X509SVIDs, X509Bundles: creds.X509Bundles, JWTBundles: creds.JWTBundles}, nil
}

func (r *svidRunner) renewAtX509(svids []*x509svid.SVID) time.Time {
	now := time.Now()
	var at time.Time
	for _, s := range svids {
		t := renewAt(now, s.Certificates[0].NotBefore, s.Certificates[0].NotAfter, r.cfg.RenewFraction, r.a.retryMin)
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
}

// renewAt is when a credential valid from notBefore to notAfter and
// received at now is renewed: after fraction of the lifetime that is left
// from the later of notBefore and now. Issuers backdate NotBefore for clock
// skew (SPIRE and the dev issuer by 10s), so measuring from NotBefore alone
// would renew a short-lived credential at once, in a loop. It is never
// sooner than floor from now.
func renewAt(now, notBefore, notAfter time.Time, fraction float64, floor time.Duration) time.Time {
	start := notBefore
	if now.After(start) {
		start = now
	}
	at := start.Add(time.Duration(float64(notAfter.Sub(start)) * fraction))
	if min := now.Add(floor); at.Before(min) {
		at = min
	}
	return at
}

// bundleRefresh is how often a signing issuer is asked for JWT bundles when
// no JWT-SVID's renewal asks for them sooner.
const bundleRefresh = 5 * time.Minute

// pullJWT renews the block's JWT-SVIDs at the configured fraction of their
// remaining lifetime, for every issuer (the Workload API serves JWT-SVIDs
// on request only).
func (r *svidRunner) pullJWT(ctx context.Context, l *loop, withJWTBundles bool) {
	r.pull(ctx, l, "jwt", func(ctx context.Context) (*hostapi.Credentials, time.Time, error) {
		fetched := time.Now()
		creds, err := r.issueJWT(ctx, withJWTBundles)
		if err != nil {
			return nil, time.Time{}, err
		}
		// With no token to renew (a bundle-only block), the bundles are
		// fetched again every bundleRefresh.
		var at time.Time
		for _, s := range creds.JWTSVIDs {
			if t := renewAt(fetched, fetched, s.SVID.Expiry, r.cfg.RenewFraction, r.a.retryMin); at.IsZero() || t.Before(at) {
				at = t
			}
		}
		if at.IsZero() {
			at = fetched.Add(bundleRefresh)
		}
		return creds, at, nil
	})
}

func (r *svidRunner) issueJWT(ctx context.Context, withJWTBundles bool) (*hostapi.Credentials, error) {
	req := &hostapi.IssueRequest{SPIFFEID: r.id, Hint: r.cfg.Hint, JWT: r.cfg.JWT, JWTBundles: withJWTBundles}
	ictx, cancel := context.WithTimeout(ctx, r.a.issueTimeout)
	defer cancel()
	creds, err := r.issuer.Issue(ictx, req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWT-SVIDs from %q: %w", r.cfg.Issuer, err)
	}
	if creds == nil {
		return nil, fmt.Errorf("fetching JWT-SVIDs from %q: the issuer returned nothing", r.cfg.Issuer)
	}
	for _, want := range r.cfg.JWT {
		found := false
		for _, got := range creds.JWTSVIDs {
			if got.Request.Key() == want.Key() && got.SVID != nil {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("fetching JWT-SVIDs from %q: no JWT-SVID for audience %q", r.cfg.Issuer, want.Audience)
		}
	}
	if withJWTBundles && creds.JWTBundles == nil {
		return nil, fmt.Errorf("fetching JWT-SVIDs from %q: the issuer returned no JWT bundle", r.cfg.Issuer)
	}
	out := &hostapi.Credentials{JWTSVIDs: creds.JWTSVIDs}
	if withJWTBundles {
		out.JWTBundles = creds.JWTBundles
	}
	return out, nil
}
