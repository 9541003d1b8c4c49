package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
)

// Fetch fetches every svid block's credentials once, writes them, and
// returns. Each block is retried with backoff until cfg.FetchTimeout
// (default 30s) passes; the error names every block that did not make it.
// Notifiers do not run: as with spiffe-helper, a one-shot fetch starts no
// command and signals no process.
func (a *Agent) Fetch(ctx context.Context) error {
	b, runners, err := a.buildOnce(ctx, "fetching", false)
	if err != nil {
		return err
	}
	defer a.closePlugins()
	if err := a.startPlugins(ctx, b.all); err != nil {
		return err
	}
	timeout := a.cfg.FetchTimeout
	if timeout <= 0 {
		timeout = 30e9
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	errs := make([]error, len(runners))
	var wg sync.WaitGroup
	for i, r := range runners {
		r.notifiers = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.fetchOnce(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchOnce retries issuing and writing until both succeed or ctx ends.
func (r *svidRunner) fetchOnce(ctx context.Context) error {
	bo := backoff{min: r.a.retryMin, max: r.a.retryMax}
	var last error
	for {
		last = r.fetchAttempt(ctx)
		if last == nil {
			return nil
		}
		r.log.Warn("one-shot fetch failed; retrying", "error", last)
		if !sleepCtx(ctx, bo.next()) {
			return fmt.Errorf("fetching svid %q: no success before the fetch timeout: %w", r.cfg.Name, last)
		}
	}
}

func (r *svidRunner) fetchAttempt(ctx context.Context) error {
	// The X.509 and the JWT requests go out at once (as the daemon's
	// loops do): a one-shot fetch waits for the slower, not for both.
	var x509, jwt *hostapi.Credentials
	var x509Err, jwtErr error
	var wg sync.WaitGroup
	if r.cfg.X509 {
		wg.Go(func() { x509, x509Err = r.issueX509(ctx, r.cfg.JWTBundles) })
	}
	if len(r.cfg.JWT) > 0 || (!r.cfg.X509 && r.cfg.JWTBundles) {
		wg.Go(func() { jwt, jwtErr = r.issueJWT(ctx, !r.cfg.X509 && r.cfg.JWTBundles) })
	}
	wg.Wait()
	if err := errors.Join(x509Err, jwtErr); err != nil {
		return err
	}
	for _, creds := range []*hostapi.Credentials{x509, jwt} {
		if creds != nil {
			r.update(creds)
		}
	}
	// A one-shot fetch delivers everything, whatever changed.
	r.mu.Lock()
	r.pending |= r.allChanges()
	r.mu.Unlock()
	snap, ch, _, ok := r.take()
	if !ok {
		return errors.New("the issuer's answer was incomplete")
	}
	if failed := r.deliver(ctx, snap, ch, false); failed {
		return r.firstWriteErr()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr != nil {
		return r.lastErr
	}
	return nil
}

func (r *svidRunner) firstWriteErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.outputs {
		if o.lastErr != nil {
			return fmt.Errorf("writer %q: %w", o.name, o.lastErr)
		}
	}
	return errors.New("writing failed")
}
