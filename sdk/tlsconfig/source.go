package tlsconfig

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ErrClosed is returned by a closed Source's getters.
var ErrClosed = errors.New("tlsconfig: source is closed")

// Retry delays after a failed reload: the first retry comes after
// retryMin, each further one after twice the last, up to retryMax. They
// cover writers that do not replace files atomically and events that were
// lost; a change in the folder reloads sooner.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// Source watches a credential folder and keeps the latest valid credentials
// in memory. It implements go-spiffe's x509svid.Source and
// x509bundle.Source, so handshakes read memory only.
//
// A reload that fails (a file missing or half written, a key that does not
// match the certificate, an SVID that does not verify against its trust
// domain's bundle) keeps the previous credentials; [Source.Err] reports
// why until a reload succeeds.
type Source struct {
	o       *options
	watcher *fsnotify.Watcher
	dir     string // cleaned o.dir
	parent  string

	mu       sync.RWMutex
	snap     *snapshot
	err      error
	closed   bool
	closeErr error

	updated chan struct{} // buffered 1

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// NewSource starts watching the credential folder and blocks until the
// first valid load, or until ctx is done (then it returns ctx's error
// joined with the last load error). ctx bounds only that wait: the Source
// runs until [Source.Close].
//
// The folder may not exist yet; its parent should, so that its creation is
// seen at once (otherwise it is polled, up to every 5s).
func NewSource(ctx context.Context, opts ...Option) (*Source, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("starting the file watcher: %w", err)
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("locating the credential folder %q: %w", o.dir, err)
	}
	o.dir = dir
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Source{
		o:       o,
		watcher: w,
		dir:     dir,
		parent:  filepath.Dir(dir),
		updated: make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	first := make(chan struct{})
	go s.run(runCtx, first)

	select {
	case <-first:
		return s, nil
	case <-ctx.Done():
		lastErr := s.Err()
		_ = s.Close()
		if lastErr != nil {
			return nil, fmt.Errorf("waiting for credentials in %q: %w; last error: %w", dir, ctx.Err(), lastErr)
		}
		return nil, fmt.Errorf("waiting for credentials in %q: %w", dir, ctx.Err())
	}
}

// Close stops the watcher and waits for its goroutine to exit. It is
// idempotent; after it, the getters return ErrClosed.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
	})
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closeErr
}

// Updated returns a channel that receives a value (buffered, at most one
// pending) whenever a reload changes the credentials or bundles. The first
// load, which NewSource waits for, is not signalled.
func (s *Source) Updated() <-chan struct{} { return s.updated }

// WaitUntilUpdated blocks until the next change signalled on Updated, or
// until ctx is done.
func (s *Source) WaitUntilUpdated(ctx context.Context) error {
	select {
	case <-s.updated:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err returns why the last reload failed, or nil when it succeeded. The
// Source serves the last good credentials meanwhile.
func (s *Source) Err() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

// GetX509SVID returns the current X509-SVID. It implements
// x509svid.Source and does no I/O.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.snap == nil {
		return nil, errors.New("tlsconfig: no credentials loaded yet")
	}
	return s.snap.svid, nil
}

// GetX509BundleForTrustDomain returns td's bundle, read from td's own
// bundle file only. It implements x509bundle.Source and does no I/O. A
// trust domain whose bundle file is gone (de-federation) has no bundle, so
// peers from it fail verification.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.snap != nil {
		if b, ok := s.snap.bundles[td]; ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("tlsconfig: no X.509 bundle for trust domain %q: the credential folder has no bundle file for it", td)
}

// TrustDomains returns the trust domains that currently have a bundle.
func (s *Source) TrustDomains() []spiffeid.TrustDomain {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.snap == nil {
		return nil
	}
	out := make([]spiffeid.TrustDomain, 0, len(s.snap.bundles))
	for td := range s.snap.bundles {
		out = append(out, td)
	}
	return out
}

// run owns the watcher: it debounces events, reloads, and retries failed
// reloads with backoff. It closes first after the first good load.
func (s *Source) run(ctx context.Context, first chan struct{}) {
	defer close(s.done)
	defer func() {
		err := s.watcher.Close()
		s.mu.Lock()
		s.closeErr = err
		s.mu.Unlock()
	}()

	// The parent is watched so that the folder's removal and re-creation
	// are seen; the folder itself is (re-)added before every load.
	if err := s.watcher.Add(s.parent); err != nil {
		s.o.logger.Warn("cannot watch the credential folder's parent; a re-created folder is found by polling", "dir", s.parent, "error", err)
	}

	timer := time.NewTimer(0) // the first load, at once
	defer timer.Stop()
	var (
		pendingSince time.Time
		failures     int
		loaded       bool
	)
	schedule := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		delay := s.o.debounce
		if limit := pendingSince.Add(10 * s.o.debounce); now.Add(delay).After(limit) {
			delay = max(limit.Sub(now), 0)
		}
		timer.Reset(delay)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-s.watcher.Events:
			if !ok {
				return
			}
			if !s.relevant(ev) {
				continue
			}
			schedule()
		case err, ok := <-s.watcher.Errors:
			if !ok {
				return
			}
			// An overflow means events were lost: reload to catch up.
			s.o.logger.Warn("file watcher error; reloading", "dir", s.dir, "error", err)
			schedule()
		case <-timer.C:
			pendingSince = time.Time{}
			// Adding a watch that exists is a no-op; after the folder
			// was removed and re-created it watches the new one.
			watchErr := s.watcher.Add(s.dir)
			err := s.reload()
			if err == nil && !loaded {
				loaded = true
				close(first)
			}
			if err == nil && watchErr != nil {
				// Loaded, but changes would go unseen: poll.
				err = fmt.Errorf("watching %q: %w", s.dir, watchErr)
				s.setErr(err)
			}
			if err != nil {
				failures++
				s.logReloadFailure(failures, err)
				timer.Reset(min(retryMin<<min(failures-1, 16), retryMax))
				continue
			}
			failures = 0
		}
	}
}

// logReloadFailure logs a failed reload: at debug level the first time (a
// flat-layout rotation can show a new certificate with the old key for a
// moment), at warn level when it persists.
func (s *Source) logReloadFailure(failures int, err error) {
	if failures > 1 {
		s.o.logger.Warn("reloading credentials failed; keeping the previous ones", "dir", s.dir, "error", err)
		return
	}
	s.o.logger.Debug("reloading credentials failed; keeping the previous ones", "dir", s.dir, "error", err)
}

// relevant reports whether ev concerns the folder or an entry in it. Pure
// chmod events do not change content.
func (s *Source) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	return name == s.dir || filepath.Dir(name) == s.dir
}

func (s *Source) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// reload loads the folder and, when it is valid and different, publishes
// it and signals Updated.
func (s *Source) reload() error {
	snap, err := load(s.o)
	if err != nil {
		s.setErr(err)
		return err
	}
	s.mu.Lock()
	changed := s.snap != nil && s.snap.digest != snap.digest
	if s.snap == nil || changed {
		s.snap = snap
	}
	s.err = nil
	s.mu.Unlock()
	if changed {
		select {
		case s.updated <- struct{}{}:
		default:
		}
	}
	return nil
}
