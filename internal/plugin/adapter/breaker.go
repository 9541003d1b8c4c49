package adapter

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBreakerOpen is wrapped by the error of a call refused because the
// plugin's circuit breaker is open.
var ErrBreakerOpen = errors.New("circuit breaker open")

// BreakerState is the state of a plugin's circuit breaker.
type BreakerState string

const (
	// BreakerClosed passes calls through.
	BreakerClosed BreakerState = "closed"
	// BreakerOpen fails calls fast until the cooldown is over.
	BreakerOpen BreakerState = "open"
	// BreakerHalfOpen lets one trial call through; its outcome closes or
	// reopens the breaker.
	BreakerHalfOpen BreakerState = "half-open"
)

// Status is a plugin's circuit breaker state, for status reports.
type Status struct {
	State BreakerState `json:"state"`
	// ConsecutiveFailures counts the failed calls since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// LastError is the last failed call's error; empty after a success.
	LastError string `json:"last_error,omitempty"`
	// RetryAt is when an open breaker lets a trial call through.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// breaker fails calls fast after threshold consecutive failures, for
// cooldown, then lets one trial call through.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	state    BreakerState
	failures int
	lastErr  error
	retryAt  time.Time
	trial    bool // a half-open trial call is in flight
}

func newBreaker(threshold int, cooldown time.Duration, now func() time.Time) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: now, state: BreakerClosed}
}

// allow reports whether a call may go through; every allowed call must be
// followed by record or release.
func (b *breaker) allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return nil
	case BreakerOpen:
		if b.now().Before(b.retryAt) {
			return b.openErr()
		}
		b.state = BreakerHalfOpen
		b.trial = true
		return nil
	default: // half-open
		if b.trial {
			return b.openErr()
		}
		b.trial = true
		return nil
	}
}

func (b *breaker) openErr() error {
	return fmt.Errorf("%w after %d consecutive failed calls (last: %v); calls fail fast until %s, then one trial call is let through",
		ErrBreakerOpen, b.failures, b.lastErr, b.retryAt.Format(time.RFC3339))
}

// record reports the outcome of an allowed call.
func (b *breaker) record(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if err == nil {
		b.state, b.failures, b.lastErr, b.retryAt = BreakerClosed, 0, nil, time.Time{}
		return
	}
	b.failures++
	b.lastErr = err
	if b.state == BreakerHalfOpen || b.failures >= b.threshold {
		b.state = BreakerOpen
		b.retryAt = b.now().Add(b.cooldown)
	}
}

// release ends an allowed call whose outcome says nothing of the plugin
// (the caller gave up).
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.trial {
		b.trial = false
		b.state = BreakerOpen // the next call after retryAt is a trial again
	}
}

func (b *breaker) status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Status{State: b.state, ConsecutiveFailures: b.failures}
	if b.state == BreakerOpen && !b.now().Before(b.retryAt) {
		st.State = BreakerHalfOpen
	}
	if b.lastErr != nil {
		st.LastError = b.lastErr.Error()
	}
	if b.state != BreakerClosed {
		st.RetryAt = b.retryAt
	}
	return st
}
