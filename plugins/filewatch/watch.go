package filewatch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/svidagent/svidagent/hostapi"
)

// Retry delays after a failed load: the first retry comes after the
// debounce (at least retryMin), each further one after twice the last, up
// to retryMax. They cover directories whose parent cannot be watched and
// lost events; a change in the directory reloads sooner.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 10 * time.Second
)

// maxWaitFactor bounds debouncing: a directory that never goes quiet is
// still reloaded every maxWaitFactor debounce periods.
const maxWaitFactor = 10

// Watch publishes the directory's credentials with update, then again each
// time they change, until ctx is done or the issuer is closed.
//
// It watches the directory (and its parent, so that the directory's
// removal and re-creation are seen), not the files: atomic renames over a
// file and Kubernetes' ..data symlink swaps are both changes of the
// directory. Events are debounced, so that a burst of writes is read once.
// Every load is validated before it is published: the key must match the
// leaf, the leaf must carry exactly one spiffe:// URI SAN, and the chain
// must verify against the CA bundle now. A load that fails publishes
// nothing (the last good credentials stay in place) and calls report with
// the error, once per distinct error; it is retried with backoff. The
// first good load after a reported error is published even if unchanged,
// so that the host sees the recovery.
func (i *Issuer) Watch(ctx context.Context, req *hostapi.IssueRequest, update func(*hostapi.Credentials), report func(error)) error {
	if req == nil {
		return errors.New("watching the files issuer: nil request")
	}
	if err := i.check(ctx, req); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watching the files issuer: %w", err)
	}
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return fmt.Errorf("watching the files issuer: %w", errClosed)
	}
	i.watches.Add(1)
	i.mu.Unlock()
	defer i.watches.Done()

	if !req.X509 {
		// Nothing this issuer serves was asked for.
		select {
		case <-ctx.Done():
			return nil
		case <-i.closing:
			return fmt.Errorf("watching the files issuer: %w", errClosed)
		}
	}

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching the files issuer: starting the file watcher: %w", err)
	}
	defer w.Close()
	dir := i.p.dir
	parent := filepath.Dir(dir)
	parentWatched := w.Add(parent) == nil
	if !parentWatched {
		i.log.Warn("cannot watch the parent of the credential directory yet; the directory's re-creation is found by polling until it can", "dir", parent)
	}

	timer := time.NewTimer(0) // the first load, at once
	defer timer.Stop()
	var (
		pendingSince time.Time
		failures     int
		reported     string // the last error reported since the last success
		published    bool
		last         [32]byte
	)
	debounce := i.p.debounce
	schedule := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		delay := debounce
		if limit := pendingSince.Add(maxWaitFactor * debounce); now.Add(delay).After(limit) {
			delay = max(limit.Sub(now), 0)
		}
		// Since Go 1.23, Reset discards a pending fire.
		timer.Reset(delay)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-i.closing:
			return fmt.Errorf("watching the files issuer: %w", errClosed)
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watching the files issuer: the file watcher stopped")
			}
			name := filepath.Clean(ev.Name)
			if name == dir || filepath.Dir(name) == dir {
				schedule()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watching the files issuer: the file watcher stopped")
			}
			// An overflow means events were lost: reload to catch up.
			i.log.Warn("file watcher error; reloading the credential directory", "dir", dir, "error", err)
			schedule()
		case <-timer.C:
			pendingSince = time.Time{}
			// Adding a watch that exists is a no-op; after the
			// directory was removed and re-created this watches the
			// new one, before it is read, so no change is missed.
			if !parentWatched {
				parentWatched = w.Add(parent) == nil
			}
			watchErr := w.Add(dir)
			snap, err := i.p.load()
			if err == nil {
				err = checkID(snap, req)
			}
			if err == nil {
				if !published || snap.digest != last || reported != "" {
					update(snap.credentials())
					if !published || snap.digest != last {
						i.log.Info("loaded new credentials from the directory", "dir", dir,
							"spiffe_id", snap.svid.ID.String(),
							"serial", fmt.Sprintf("%x", snap.svid.Certificates[0].SerialNumber),
							"not_after", snap.svid.Certificates[0].NotAfter)
					}
					published, last = true, snap.digest
				}
				reported = ""
				if watchErr != nil {
					err = fmt.Errorf("watching the directory %q for changes: %w; it is polled meanwhile", dir, watchErr)
				}
			} else {
				err = fmt.Errorf("loading credentials from %q: %w", dir, err)
			}
			if err != nil {
				failures++
				if msg := err.Error(); msg != reported {
					reported = msg
					report(err)
				}
				i.log.Debug("loading the credential directory failed; keeping the last good credentials", "dir", dir, "error", err, "failures", failures)
				timer.Reset(min(max(debounce, retryMin)<<min(failures-1, 16), retryMax))
				continue
			}
			failures = 0
		}
	}
}
