package workloadapi

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/hostapi"
)

// One Issuer serves every svid block that names it, and each block calls
// Watch. A Workload API sends every stream the whole X.509 context, so one
// stream per Watch call would make a rotation of N identities cost N
// streams × N SVIDs parsed (quadratic; 1,000 identities took a minute and
// GiBs). Instead an Issuer keeps one shared stream per kind (the X.509
// context, the JWT bundles), started by the first subscriber and stopped
// when the last one leaves, and fans each update out to the subscribers.
// The stream's goroutine never runs a subscriber's callbacks: it posts to
// each subscriber's mailbox, which keeps the latest event of each kind, and
// the subscriber's Watch goroutine runs update and report. A slow
// subscriber therefore delays only itself, and skips to the latest state.

var errClosed = errors.New("the issuer is closed")

// eventKind is what a subscriber's mailbox keeps one of.
type eventKind uint8

const (
	x509Update eventKind = iota
	x509Error
	jwtBundlesUpdate
	jwtBundlesError
)

// event is an update (val, a *x509Snapshot or a *jwtbundle.Set) or a
// stream error (err, wrapped for the operator).
type event struct {
	kind eventKind
	val  any
	err  error
}

// subscriber is the mailbox of one Watch call.
type subscriber struct {
	wake chan struct{} // buffered 1: something was posted

	mu      sync.Mutex
	pending []event // at most one per kind, oldest first
	spare   []event // the previous pending, reused
	fatal   error   // ends the Watch call
}

func newSubscriber() *subscriber { return &subscriber{wake: make(chan struct{}, 1)} }

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// post queues ev, replacing a pending event of the same kind: the
// subscriber sees the latest state, in the order the kinds last changed.
func (s *subscriber) post(ev event) {
	s.mu.Lock()
	if s.fatal == nil {
		s.pending = slices.DeleteFunc(s.pending, func(e event) bool { return e.kind == ev.kind })
		s.pending = append(s.pending, ev)
	}
	s.mu.Unlock()
	s.signal()
}

// fail ends the subscriber's Watch with err; pending events are dropped.
func (s *subscriber) fail(err error) {
	s.mu.Lock()
	if s.fatal == nil {
		s.fatal = err
		s.pending = s.pending[:0]
	}
	s.mu.Unlock()
	s.signal()
}

// take returns the pending events, which stay valid until the next take,
// and the fatal error, if any.
func (s *subscriber) take() ([]event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.pending
	clear(s.spare)
	s.pending, s.spare = s.spare[:0], evs
	return evs, s.fatal
}

// run is one life of a shared stream: the go-spiffe watch loop, from the
// first subscriber until the last leaves, Close, or an error go-spiffe
// cannot retry.
type run struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has exited
}

// stream is a shared Workload API stream and its subscribers.
type stream struct {
	what     string // "watching X509-SVIDs", for errors
	upd, bad eventKind
	base     context.Context // the issuer's lifetime
	wrap     func(what string, err error) error
	// watch runs go-spiffe's watch until ctx is done or it gives up,
	// calling publish and report.
	watch func(ctx context.Context, publish func(any), report func(error)) error

	mu        sync.Mutex
	closed    bool
	subs      map[*subscriber]struct{}
	cur       *run
	latest    any   // the current run's last update; nil before the first
	latestErr error // the current run's last error since that update
}

func newStream(base context.Context, what string, upd, bad eventKind, wrap func(string, error) error,
	watch func(ctx context.Context, publish func(any), report func(error)) error) *stream {
	return &stream{what: what, upd: upd, bad: bad, base: base, wrap: wrap, watch: watch, subs: map[*subscriber]struct{}{}}
}

// join subscribes sub, starting the stream if it is the first, and posts
// the latest state to it at once. It returns the run that sub joined, for
// leave.
func (s *stream) join(sub *subscriber) (*run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	s.subs[sub] = struct{}{}
	if s.cur == nil {
		s.cur = s.startLocked()
		return s.cur, nil
	}
	if s.latest != nil {
		sub.post(event{kind: s.upd, val: s.latest})
	}
	if s.latestErr != nil {
		sub.post(event{kind: s.bad, err: s.latestErr})
	}
	return s.cur, nil
}

// leave unsubscribes sub, stops the stream if sub was the last, and waits
// until the goroutine of joined (and of the run it stopped) has exited
// unless joined still serves other subscribers. A subscriber that ended or
// close failed is no longer subscribed: its leave only waits for joined.
func (s *stream) leave(sub *subscriber, joined *run) {
	var stopped *run
	s.mu.Lock()
	if _, ok := s.subs[sub]; ok {
		delete(s.subs, sub)
		if len(s.subs) == 0 && s.cur != nil {
			stopped = s.cur
			stopped.cancel()
			s.resetLocked()
		}
	}
	live := s.cur
	s.mu.Unlock()
	if stopped != nil {
		<-stopped.done
	}
	if joined != live && joined != stopped {
		<-joined.done
	}
}

// close stops the stream for good: every subscriber's Watch ends with
// errClosed, and the subscribers are dropped. It waits until the goroutine
// has exited.
func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	r := s.cur
	if r != nil {
		r.cancel()
		s.resetLocked()
	}
	for sub := range s.subs {
		sub.fail(errClosed)
	}
	clear(s.subs)
	s.mu.Unlock()
	if r != nil {
		<-r.done
	}
}

func (s *stream) resetLocked() {
	s.cur, s.latest, s.latestErr = nil, nil, nil
}

func (s *stream) startLocked() *run {
	ctx, cancel := context.WithCancel(s.base)
	r := &run{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		err := s.watch(ctx, func(v any) { s.publish(r, v) }, func(err error) { s.report(r, err) })
		s.ended(r, err)
	}()
	return r
}

// publish fans an update of run r out to every subscriber.
func (s *stream) publish(r *run, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != r {
		return // stopped meanwhile
	}
	s.latest, s.latestErr = v, nil
	for sub := range s.subs {
		sub.post(event{kind: s.upd, val: v})
	}
}

// report fans a stream error of run r out to every subscriber; go-spiffe
// retries meanwhile.
func (s *stream) report(r *run, err error) {
	if r.ctx.Err() != nil || err == nil {
		return // our own cancellation is no failure
	}
	err = s.wrap(s.what, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != r {
		return
	}
	s.latestErr = err
	for sub := range s.subs {
		sub.post(event{kind: s.bad, err: err})
	}
}

// ended handles the end of run r's watch: unless r was stopped, go-spiffe
// gave up (an error it cannot retry), which ends every subscriber's Watch
// and unsubscribes it. The next subscriber starts a new run.
func (s *stream) ended(r *run, err error) {
	if r.ctx.Err() != nil {
		return
	}
	if err == nil {
		err = errors.New("the stream ended")
	}
	err = s.wrap(s.what, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != r {
		return
	}
	r.cancel()
	s.resetLocked()
	// Drop the failed subscribers: a run started before they leave serves
	// only the callers that join it, and stops when the last of them leaves.
	for sub := range s.subs {
		sub.fail(err)
	}
	clear(s.subs)
}

// x509Snapshot is one X.509 context, indexed once for every subscriber's
// selection (hostapi.X509Index).
type x509Snapshot struct {
	bundles *x509bundle.Set
	svids   []*x509svid.SVID
	index   *hostapi.X509Index
}

func newX509Snapshot(c *workloadapi.X509Context) *x509Snapshot {
	return &x509Snapshot{bundles: c.Bundles, svids: c.SVIDs, index: hostapi.NewX509Index(c.SVIDs)}
}

// selectFor picks the X509-SVIDs req asks for (hostapi.X509Index.Select).
func (s *x509Snapshot) selectFor(req *hostapi.IssueRequest) ([]*x509svid.SVID, error) {
	if len(s.svids) == 0 {
		return nil, errNoX509SVID
	}
	return s.index.Select(req)
}

var errNoX509SVID = errors.New("the Workload API offered no X509-SVID; check the workload's registration entries")
