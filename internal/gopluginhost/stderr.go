package gopluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// maxLine bounds a buffered stderr line; a longer one is emitted in parts.
const maxLine = 64 << 10

// lineLogger is an io.Writer that splits a plugin's output into lines and
// logs each through log: an hclog JSON line ({"@level":..., "@message":...})
// at its level with its fields as attributes, any other line at info, or
// at error from a Go panic or fatal error on. It is safe for concurrent use.
type lineLogger struct {
	log    func(ctx context.Context, level slog.Level, msg string, args ...any) bool
	stream string // "stderr" or "stdout"

	mu      sync.Mutex
	buf     []byte
	inPanic bool
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= maxLine {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.emit(l.buf)
		l.buf = l.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a pending partial line.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	ctx := context.Background()
	if level, msg, attrs, ok := parseHCLog(line); ok {
		l.log(ctx, level, msg, attrs...)
		return
	}
	s := string(line)
	if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
		l.inPanic = true
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
			attrs = append(attrs, slog.String(k, v))
		case float64, bool, nil:
			attrs = append(attrs, slog.Any(k, v))
		default:
			b, _ := json.Marshal(v)
			attrs = append(attrs, slog.String(k, string(b)))
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
