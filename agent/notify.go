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
	log      *slog.Logger
	a        *Agent

	wake chan struct{} // buffered 1

	mu       sync.Mutex
	next     *hostapi.RotationEvent
	started  bool // an event was posted before
	lastErr  error
	lastCall time.Time
	calls    uint64
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
	if n.next != nil {
		merged := *ev
		merged.Reason |= n.next.Reason
		merged.Initial = merged.Initial || n.next.Initial
		ev = &merged
	}
	n.next = ev
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
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

func (n *notifierRunner) run(ctx context.Context, l *loop) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		ev := n.next
		n.next = nil
		n.mu.Unlock()
		if ev == nil {
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
		n.mu.Lock()
		n.lastErr, n.lastCall = err, start
		n.calls++
		n.mu.Unlock()
		if err != nil {
			n.a.metricsErr(n.svid, metrics.StageNotify)
			var serial string // names the rotation: a failure of the next one is a new record
			if len(ev.X509) > 0 {
				serial = ev.X509[0].Serial
			}
			n.log.Error("notifying failed; it will be tried again at the next rotation", "error", err, "serial", serial, "duration", time.Since(start))
		} else {
			n.log.Debug("notified", "reason", ev.Reason.String(), "initial", ev.Initial, "duration", time.Since(start))
		}
	}
}
