// Package testkit holds the helpers the tests of several packages share: a
// goroutine-safe buffer for logs and process output, and a bounded wait for
// states that have no event. It is imported by tests only.
package testkit

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// Buffer is a buffer safe for concurrent writers (a logger, a process's
// stdout and stderr) and readers. It does not embed bytes.Buffer: an
// embedded buffer's ReadFrom would be promoted, and io.Copy would use it,
// bypassing the lock.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Records decodes what was written so far as JSON log records, one a line
// (slog's JSON handler); a line that is not JSON fails t.
func (b *Buffer) Records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(b.String())), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("decoding log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// WaitFor polls cond until it holds, failing t after timeout. It is for
// states on disk, behind HTTP or in /proc, which offer no event to wait on;
// where an event exists, wait on the event.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
