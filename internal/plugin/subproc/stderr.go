package subproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Caps of a plugin's stdout and stderr as they are logged. A plugin that
// prints without end costs the agent at most OutputBytesPerSecond of log
// (plus one summary line a second), whatever the size of its lines.
const (
	// MaxOutputLine is the longest line logged, in bytes once its control
	// bytes are escaped; the rest of a longer line is dropped, and the
	// line ends with a marker that gives its length. It also bounds the
	// buffer of a line.
	MaxOutputLine = 8 << 10
	// OutputBytesPerSecond and OutputLinesPerSecond are the rates of the
	// token buckets that a plugin's stdout and stderr share; the bursts
	// are four and two times as large. Lines over either are dropped and
	// counted.
	OutputBytesPerSecond = 64 << 10
	OutputLinesPerSecond = 50
	// DropSummaryInterval is the least time between two summaries of
	// dropped lines.
	DropSummaryInterval = time.Second
)

// lineLogger is an io.Writer that splits a plugin's output into lines and
// logs each through log: an hclog JSON line ({"@level":..., "@message":...})
// at its level with its fields as attributes, any other line at info, or
// at error from a Go panic or fatal error on. It is safe for concurrent use.
type lineLogger struct {
	log    func(ctx context.Context, level slog.Level, msg string, args ...any) bool
	stream string       // "stderr" or "stdout"
	limit  *outputLimit // shared by a plugin's streams; nil: no limit

	mu      sync.Mutex
	buf     []byte // at most MaxOutputLine
	cut     int    // bytes of the current line dropped past MaxOutputLine
	inPanic bool
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		room := MaxOutputLine - len(l.buf)
		if len(part) > room {
			l.cut += len(part) - room
			part = part[:room]
		}
		l.buf = append(l.buf, part...)
		if i < 0 {
			break
		}
		l.emit(l.buf, l.cut)
		l.buf, l.cut = l.buf[:0], 0
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a pending partial line and the summary of dropped lines.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf, l.cut)
		l.buf, l.cut = l.buf[:0], 0
	}
	if l.limit != nil {
		l.limit.flush(l.log)
	}
}

// emit logs one line whose cut bytes past MaxOutputLine were dropped.
func (l *lineLogger) emit(line []byte, cut int) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	ctx := context.Background()
	if cut == 0 {
		if level, msg, attrs, ok := parseHCLog(line); ok {
			if l.limit == nil || l.limit.allow(len(line), l.log) {
				l.log(ctx, level, escapeControl(msg), attrs...)
			}
			return
		}
	}
	// Escaped first: the cap and the budget count what reaches the log.
	s := escapeControl(string(line))
	if cut > 0 || len(s) > MaxOutputLine {
		i := min(len(s), MaxOutputLine)
		for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + fmt.Sprintf(" [… cut: the line had %d bytes; lines are logged up to %d bytes]", len(line)+cut, MaxOutputLine)
	}
	if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
		l.inPanic = true
	}
	if l.limit != nil && !l.limit.allow(len(s), l.log) {
		return
	}
	level := slog.LevelInfo
	if l.inPanic {
		level = slog.LevelError
	}
	l.log(ctx, level, s, "stream", l.stream)
}

// parseHCLog decodes one hclog JSON line.
func parseHCLog(line []byte) (slog.Level, string, []any, bool) {
	if len(line) == 0 || line[0] != '{' {
		return 0, "", nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return 0, "", nil, false
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return 0, "", nil, false
	}
	lv, _ := m["@level"].(string)
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") || k == "@module" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	attrs := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		v := m[k]
		if k == "@module" {
			k = "module"
		}
		switch v := v.(type) {
		case string:
			attrs = append(attrs, slog.String(k, escapeControl(v)))
		case float64, bool, nil:
			attrs = append(attrs, slog.Any(k, v))
		default:
			b, _ := json.Marshal(v)
			attrs = append(attrs, slog.String(k, escapeControl(string(b))))
		}
	}
	return hclogLevel(lv), msg, attrs, true
}

// hclogLevel maps hclog's level names onto slog's levels; trace is below
// debug.
func hclogLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// escapeControl writes the control bytes of s (C0 but tab, DEL, C1) and
// its invalid UTF-8 as \xNN or \u00NN, so that what a plugin prints
// cannot drive the terminal or the log viewer of whoever reads the
// agent's log (ANSI escape sequences, BEL, carriage returns).
func escapeControl(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 && r != '\t' || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r >= 0x80 && r <= 0x9f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// outputLimit is the pair of token buckets (bytes and lines) that a
// plugin's stdout and stderr share, and the count of what they dropped. It
// is safe for concurrent use.
type outputLimit struct {
	now func() time.Time

	mu           sync.Mutex
	bytes, lines float64 // tokens
	last         time.Time
	droppedLines int
	droppedBytes int
	lastSummary  time.Time
}

func newOutputLimit(now func() time.Time) *outputLimit {
	return &outputLimit{now: now, bytes: 4 * OutputBytesPerSecond, lines: 2 * OutputLinesPerSecond}
}

type logFunc = func(ctx context.Context, level slog.Level, msg string, args ...any) bool

// allow takes n bytes and a line from the buckets, and reports whether
// they were there. A dropped line is counted; the count is logged through
// log at most once per DropSummaryInterval.
func (o *outputLimit) allow(n int, log logFunc) bool {
	o.mu.Lock()
	now := o.now()
	if !o.last.IsZero() {
		dt := now.Sub(o.last).Seconds()
		o.bytes = min(o.bytes+dt*OutputBytesPerSecond, 4*OutputBytesPerSecond)
		o.lines = min(o.lines+dt*OutputLinesPerSecond, 2*OutputLinesPerSecond)
	}
	o.last = now
	ok := o.bytes >= float64(n) && o.lines >= 1
	if ok {
		o.bytes -= float64(n)
		o.lines--
	} else {
		o.droppedLines++
		o.droppedBytes += n
	}
	lines, bytes := 0, 0
	if o.droppedLines > 0 && now.Sub(o.lastSummary) >= DropSummaryInterval {
		lines, bytes = o.droppedLines, o.droppedBytes
		o.droppedLines, o.droppedBytes, o.lastSummary = 0, 0, now
	}
	o.mu.Unlock()
	if lines > 0 {
		summarize(log, lines, bytes)
	}
	return ok
}

// flush logs the dropped lines not yet summarised.
func (o *outputLimit) flush(log logFunc) {
	o.mu.Lock()
	lines, bytes := o.droppedLines, o.droppedBytes
	o.droppedLines, o.droppedBytes, o.lastSummary = 0, 0, o.now()
	o.mu.Unlock()
	if lines > 0 {
		summarize(log, lines, bytes)
	}
}

func summarize(log logFunc, lines, bytes int) {
	log(context.Background(), slog.LevelWarn, "plugin output dropped by the rate limit",
		"dropped_lines", lines, "dropped_bytes", bytes,
		"bytes_per_second", OutputBytesPerSecond, "lines_per_second", OutputLinesPerSecond)
}
