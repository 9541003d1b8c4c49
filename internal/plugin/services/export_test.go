package services

import (
	"context"
	"net/netip"
	"time"
)

// SetClock replaces the Logger's clock, for tests of the rate limit.
func SetClock(l *Logger, now func() time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = now
	l.last = time.Time{}
}

// SetLookup replaces the HTTP service's name resolution, so that tests
// map names to loopback addresses and never send traffic elsewhere.
func SetLookup(h *HTTP, f func(ctx context.Context, host string) ([]netip.Addr, error)) { h.lookup = f }
