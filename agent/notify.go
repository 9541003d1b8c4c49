package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/metrics"
)

// notifierRunner delivers rotation events to one notifier from its own
// goroutine, so that a slow notifier delays no other and never the
// watch loop. Events that arrive while a Notify runs coalesce into the
// latest, keeping the union of their reasons: the last one always arrives.
type notifierRunner struct {
	name     string
	svid     string // the svid block's name, for metrics
	notifier hostapi.Notifier
	on       hostapi.Changes
	timeout  time.Duration
	// retryBackoff is the notifier block's first retry delay; 0: the
	// notifier's own, else the agent's.
	retryBackoff time.Duration
	log          *slog.Logger
	a            *Agent

	wake chan struct{} // buffered 1

	mu       sync.Mutex
	next     *hostapi.RotationEvent
	started  bool // an event was posted before
	lastErr  error
	lastCall time.Time
	calls    uint64
	failures int       // consecutive failed attempts of the event being retried
	nextTry  time.Time // when it is tried again; zero when none is pending
}

// post hands ev to the runner if the notifier wants it: the first event
// always, later ones when their reason is in the notifier's "on" set.
func (n *notifierRunner) post(ev *hostapi.RotationEvent) {
	n.mu.Lock()
	if n.started && !ev.Reason.Has(n.on) {
		n.mu.Unlock()
		return
	}
	n.started = true
	n.next = merge(ev, n.next)
	n.mu.Unlock()
	n.signal()
}

// signal wakes the runner; it never blocks.
func (n *notifierRunner) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// hold keeps ev for later because the notifier's plugin has not started
// (ns): an event posted meanwhile is merged into it, latest wins, and the
// plugin's whenReady hook wakes the runner to deliver it.
func (n *notifierRunner) hold(ev *hostapi.RotationEvent, ns *notStartedError) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next, n.lastErr = merge(n.next, ev), ns // n.next, if any, is newer
}

// merge returns newer with what older changed too (its reasons, and
// Initial if it was the first delivery); older may be nil.
func merge(newer, older *hostapi.RotationEvent) *hostapi.RotationEvent {
	if newer == nil {
		return older
	}
	if older == nil {
		return newer
	}
	merged := *newer
	merged.Reason |= older.Reason
	merged.Initial = merged.Initial || older.Initial
	return &merged
}

// postFirst posts ev only if no event was posted before.
func (n *notifierRunner) postFirst(ev *hostapi.RotationEvent) {
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	if !started {
		n.post(ev)
	}
}

// retryBackoffer is implemented by a notifier that sets the first delay
// before the core tries a failed notification again (notifier.signal's
// retry_backoff).
type retryBackoffer interface{ RetryBackoff() time.Duration }

// notifyFailedMsg is logged when a notification fails.
const notifyFailedMsg = "notifying failed; it is tried again with backoff until it succeeds or a newer rotation supersedes it"

// run delivers events until ctx is done. A failed notification is tried
// again after a jittered, doubling delay (from the notifier block's
// retry_backoff, else the notifier's own first delay, else the agent's
// retry minimum; up to the agent's maximum) until it succeeds
// or a newer event supersedes it: the newer one is delivered instead, with
// the reasons of both, and the older one never after it. An event for a
// plugin that has not started waits for it (hold), and is not a failure.
func (n *notifierRunner) run(ctx context.Context, l *loop) {
	bo := backoff{min: n.a.retryMin, max: n.a.retryMax}
	if rb, ok := n.notifier.(retryBackoffer); ok && rb.RetryBackoff() > 0 {
		bo.min = rb.RetryBackoff()
	}
	if n.retryBackoff > 0 { // the notifier block's retry_backoff
		bo.min = n.retryBackoff
	}
	bo.max = max(bo.max, bo.min)
	var (
		failed *hostapi.RotationEvent // the event to try again, or nil
		retry  *time.Timer
		retryC <-chan time.Time
	)
	dropRetry := func() {
		if retry != nil {
			retry.Stop()
		}
		retry, retryC, failed = nil, nil, nil
	}
	defer dropRetry()
	for {
		var ev *hostapi.RotationEvent
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
			n.mu.Lock()
			ev = n.next
			n.next = nil
			n.mu.Unlock()
			if ev == nil {
				continue
			}
			ev = merge(ev, failed) // a failed one superseded: keep what it changed
			dropRetry()
		case <-retryC:
			ev = failed
			retry, retryC, failed = nil, nil, nil
			n.a.metrics.NotifyRetry(n.svid, n.name)
		}
		if ns := notStarted(n.notifier); ns != nil {
			n.hold(ev, ns)
			continue
		}
		l.busy()
		start := time.Now()
		// A Notify that has begun finishes (within its timeout) even when
		// the runner stops, at shutdown or at a reload.
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.timeout)
		err := n.notifier.Notify(nctx, ev)
		cancel()
		l.idle()
		n.a.metrics.NotifyDuration(n.svid, n.name, time.Since(start))
		var wait time.Duration
		if err != nil {
			wait = bo.next()
			failed, retry = ev, time.NewTimer(wait)
			retryC = retry.C
		} else {
			bo.reset()
		}
		n.mu.Lock()
		n.lastErr, n.lastCall = err, start
		n.calls++
		if err != nil {
			n.failures++
			n.nextTry = start.Add(wait)
		} else {
			n.failures, n.nextTry = 0, time.Time{}
		}
		n.mu.Unlock()
		if err != nil {
			n.a.metricsErr(n.svid, metrics.StageNotify)
			var serial string // names the rotation: a failure of the next one is a new record
			if len(ev.X509) > 0 {
				serial = ev.X509[0].Serial
			}
			n.log.Error(notifyFailedMsg, "error", err, "serial", serial, "duration", time.Since(start))
			n.log.Debug("notification retry scheduled", "serial", serial, "in", wait)
		} else {
			n.log.Debug("notified", "reason", ev.Reason.String(), "initial", ev.Initial, "duration", time.Since(start))
		}
	}
}
