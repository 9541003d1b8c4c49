package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/hostapi"
)

// These tests drive a stream directly, with a watch function in place of
// go-spiffe's, to reach orderings that Watch through a fake Workload API
// cannot pin down: a new Watch joining between a subscriber's failure and
// its leave.

// fakeWatch returns a watch function whose first run fails with an error
// go-spiffe cannot retry and whose later runs last until cancelled. running
// counts the runs whose goroutine is inside watch.
func fakeWatch(running *atomic.Int32) func(context.Context, func(any), func(error)) error {
	var runs atomic.Int32
	return func(ctx context.Context, _ func(any), _ func(error)) error {
		running.Add(1)
		defer running.Add(-1)
		if runs.Add(1) == 1 {
			return errors.New("fatal")
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

func passErr(_ string, err error) error { return err }

// TestStreamFailedSubscriberLeavesNoRun is the regression test for a run
// that outlived every Watch: A is failed by the end of run 1 but has not
// left yet when B joins (starting run 2) and leaves. B was the last live
// subscriber, so its leave must stop run 2 and wait for it; before the fix
// run 2 stayed open for the failed A, whose leave later cancelled it
// without waiting, and Close no longer knew of it.
func TestStreamFailedSubscriberLeavesNoRun(t *testing.T) {
	var running atomic.Int32
	s := newStream(context.Background(), "watching", x509Update, x509Error, passErr, fakeWatch(&running))

	a := newSubscriber()
	ra, err := s.join(a)
	if err != nil {
		t.Fatal(err)
	}
	<-ra.done
	if _, fatal := a.take(); fatal == nil || fatal.Error() != "fatal" {
		t.Fatalf("A's fatal error = %v, want the end of run 1", fatal)
	}

	b := newSubscriber()
	rb, err := s.join(b)
	if err != nil {
		t.Fatal(err)
	}
	if rb == ra {
		t.Fatal("B joined the ended run 1")
	}
	s.leave(b, rb)
	select {
	case <-rb.done:
	default:
		t.Error("B, the last live subscriber, left while run 2 still runs (kept open for the failed A)")
	}

	s.leave(a, ra)
	select {
	case <-rb.done:
	default:
		t.Error("A's leave returned while run 2 still runs")
	}
	s.mu.Lock()
	cur, subs := s.cur, len(s.subs)
	s.mu.Unlock()
	if cur != nil || subs != 0 {
		t.Errorf("after every leave: run open = %v, %d subscribers; want none", cur != nil, subs)
	}
	s.close()
	if n := running.Load(); n != 0 {
		t.Errorf("%d watch goroutines still running after every leave and close", n)
	}
}

// TestStreamCloseDropsSubscribers: close fails every subscriber and forgets
// them; their leave afterwards returns once the stopped run has exited, and
// join fails.
func TestStreamCloseDropsSubscribers(t *testing.T) {
	var running atomic.Int32
	watch := fakeWatch(&running)
	watch(context.Background(), nil, nil) // use up the failing first run
	s := newStream(context.Background(), "watching", x509Update, x509Error, passErr, watch)

	a, b := newSubscriber(), newSubscriber()
	ra, err := s.join(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := s.join(b)
	if err != nil {
		t.Fatal(err)
	}
	if ra != rb {
		t.Fatal("B did not join A's run")
	}
	s.close()
	select {
	case <-ra.done:
	default:
		t.Error("close returned while the run still runs")
	}
	for _, sub := range []*subscriber{a, b} {
		if _, fatal := sub.take(); !errors.Is(fatal, errClosed) {
			t.Errorf("fatal error after close = %v, want errClosed", fatal)
		}
	}
	s.mu.Lock()
	subs := len(s.subs)
	s.mu.Unlock()
	if subs != 0 {
		t.Errorf("%d subscribers kept after close, want 0", subs)
	}
	s.leave(a, ra)
	s.leave(b, rb)
	if _, err := s.join(newSubscriber()); !errors.Is(err, errClosed) {
		t.Errorf("join after close: %v, want errClosed", err)
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d watch goroutines still running after close", n)
	}
}

// TestSnapshotSelect: a snapshot selects with hostapi.X509Index (the
// selection rules are tested in hostapi) and says when the Workload API
// offered nothing at all.
func TestSnapshotSelect(t *testing.T) {
	a := spiffeid.RequireFromString("spiffe://example.org/a")
	b := spiffeid.RequireFromString("spiffe://example.org/b")
	svids := []*x509svid.SVID{{ID: a}, {ID: b, Hint: "h1"}, {ID: a, Hint: "h1"}}
	reqs := []hostapi.IssueRequest{{}, {All: true}, {SPIFFEID: a, Hint: "h1"}, {Hint: "h1"}, {Hint: "h3"}}
	snap := newX509Snapshot(&workloadapi.X509Context{SVIDs: svids})
	for _, req := range reqs {
		want, wantErr := hostapi.SelectX509(svids, &req)
		got, gotErr := snap.selectFor(&req)
		if !slices.Equal(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%+v: snapshot = %v, %v; hostapi = %v, %v", req, got, gotErr, want, wantErr)
		}
	}
	empty := newX509Snapshot(&workloadapi.X509Context{})
	for _, req := range reqs {
		if _, err := empty.selectFor(&req); !errors.Is(err, errNoX509SVID) {
			t.Errorf("%+v among none: %v, want errNoX509SVID", req, err)
		}
	}
}
