package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// repeatWindow is how long a failure logged once is only counted when it
// repeats.
const repeatWindow = time.Minute

// repeatHandler keeps a failure that repeats from flooding the log: a
// record with an "error" attribute that repeats, within repeatWindow of
// its last logged occurrence, one with the same level, message, logger
// attributes and attributes (but "duration") is counted instead of logged:
// a failure of a new rotation (another serial) is a new record. The next occurrence
// after the window is logged with "repeats_suppressed" = that count.
// Records without an "error" attribute pass through. The current state of
// every failure stays in /status, unthrottled.
type repeatHandler struct {
	next   slog.Handler
	st     *repeatState
	prefix string // the logger's attributes and groups, as a key
}

type repeatState struct {
	now    func() time.Time
	window time.Duration

	mu   sync.Mutex
	seen map[string]*repeat
}

type repeat struct {
	logged     time.Time
	suppressed int
}

// maxRepeatKeys bounds the failures remembered; older ones are forgotten
// first.
const maxRepeatKeys = 1024

func newRepeatHandler(next slog.Handler, window time.Duration, now func() time.Time) *repeatHandler {
	return &repeatHandler{next: next, st: &repeatState{now: now, window: window, seen: map[string]*repeat{}}}
}

func (h *repeatHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *repeatHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &repeatHandler{next: h.next.WithAttrs(as), st: h.st, prefix: h.prefix + fmt.Sprint(as)}
}

func (h *repeatHandler) WithGroup(name string) slog.Handler {
	return &repeatHandler{next: h.next.WithGroup(name), st: h.st, prefix: h.prefix + "(" + name + ")"}
}

func (h *repeatHandler) Handle(ctx context.Context, r slog.Record) error {
	var attrs strings.Builder
	found := false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "error":
			found = true
		case "duration":
			return true // differs on every repeat
		}
		attrs.WriteString(a.String())
		attrs.WriteByte(0)
		return true
	})
	if !found {
		return h.next.Handle(ctx, r)
	}
	key := r.Level.String() + "\x00" + r.Message + "\x00" + h.prefix + "\x00" + attrs.String()
	n, ok := h.st.admit(key)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeats_suppressed", n))
	}
	return h.next.Handle(ctx, r)
}

// admit reports whether the record of key is logged, and how many of its
// repeats were suppressed since it last was.
func (s *repeatState) admit(key string) (suppressed int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e := s.seen[key]; e != nil {
		if now.Sub(e.logged) < s.window {
			e.suppressed++
			return 0, false
		}
		suppressed = e.suppressed
		e.logged, e.suppressed = now, 0
		return suppressed, true
	}
	if len(s.seen) >= maxRepeatKeys {
		for k, e := range s.seen {
			if now.Sub(e.logged) >= s.window {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= maxRepeatKeys {
			clear(s.seen)
		}
	}
	s.seen[key] = &repeat{logged: now}
	return 0, true
}
