package hostsvc

import "time"

// SetClock replaces the Logger's clock, for tests of the rate limit.
func SetClock(l *Logger, now func() time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = now
	l.last = time.Time{}
}
