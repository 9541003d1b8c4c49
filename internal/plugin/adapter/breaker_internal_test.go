package adapter

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBreakerCycle(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	b := newBreaker(3, 30*time.Second, c.now)
	fail := errors.New("boom")
	step := func(what string, wantAllowed bool, outcome error) {
		t.Helper()
		err := b.allow()
		if (err == nil) != wantAllowed {
			t.Fatalf("%s: allow = %v, want allowed %v", what, err, wantAllowed)
		}
		if err == nil {
			b.record(outcome)
		} else if !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("%s: %v does not wrap ErrBreakerOpen", what, err)
		}
	}
	step("1st failure", true, fail)
	step("2nd failure", true, fail)
	step("success resets", true, nil)
	step("1st failure", true, fail)
	step("2nd failure", true, fail)
	step("3rd failure opens", true, fail)
	if st := b.status(); st.State != BreakerOpen || st.RetryAt != c.now().Add(30*time.Second) {
		t.Fatalf("status %+v, want open until +30s", st)
	}
	step("open fails fast", false, nil)
	c.add(29 * time.Second)
	step("still open", false, nil)
	c.add(time.Second)
	if st := b.status(); st.State != BreakerHalfOpen {
		t.Fatalf("status %+v after the cooldown, want half-open", st)
	}
	// The trial call: while it runs, others fail fast.
	if err := b.allow(); err != nil {
		t.Fatalf("trial refused: %v", err)
	}
	if err := b.allow(); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("second call during the trial = %v, want refused", err)
	}
	b.record(fail)
	if st := b.status(); st.State != BreakerOpen || st.ConsecutiveFailures != 4 {
		t.Fatalf("failed trial: status %+v, want open again", st)
	}
	step("reopened", false, nil)
	c.add(30 * time.Second)
	step("trial succeeds", true, nil)
	if st := b.status(); st.State != BreakerClosed || st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Fatalf("status %+v, want closed", st)
	}
	// A released trial (the caller gave up) leaves the next call a trial.
	for i := 0; i < 3; i++ {
		step("fail", true, fail)
	}
	c.add(30 * time.Second)
	if err := b.allow(); err != nil {
		t.Fatal(err)
	}
	b.release()
	step("trial after release", true, nil)
}
