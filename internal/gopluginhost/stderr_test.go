package gopluginhost

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type line struct {
	level slog.Level
	msg   string
	attrs string
}

type lineSink struct {
	mu    sync.Mutex
	lines []line
}

func (s *lineSink) log(_ context.Context, level slog.Level, msg string, args ...any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := slog.NewRecord(time.Time{}, level, msg, 0)
	r.Add(args...)
	var attrs []string
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a.String()); return true })
	s.lines = append(s.lines, line{level, msg, strings.Join(attrs, " ")})
	return true
}

func TestLineLogger(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []line
	}{
		{name: "hclog json", writes: []string{`{"@level":"warn","@message":"disk low","@module":"n","@timestamp":"2026-01-01T00:00:00Z","free":12}` + "\n"},
			want: []line{{slog.LevelWarn, "disk low", "module=n free=12"}}},
		{name: "trace below debug", writes: []string{`{"@level":"trace","@message":"t"}` + "\n"},
			want: []line{{slog.LevelDebug - 4, "t", ""}}},
		{name: "split across writes", writes: []string{`{"@level":"error",`, `"@message":"boom"}`, "\n"},
			want: []line{{slog.LevelError, "boom", ""}}},
		{name: "plain line", writes: []string{"hello\n\n"},
			want: []line{{slog.LevelInfo, "hello", "stream=stderr"}}},
		{name: "panic and its trace", writes: []string{"panic: oops\n", "goroutine 1 [running]:\n"},
			want: []line{{slog.LevelError, "panic: oops", "stream=stderr"}, {slog.LevelError, "goroutine 1 [running]:", "stream=stderr"}}},
		{name: "partial line flushed", writes: []string{"no newline"},
			want: []line{{slog.LevelInfo, "no newline", "stream=stderr"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &lineSink{}
			l := &lineLogger{log: sink.log, stream: "stderr"}
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			l.Flush()
			if fmt.Sprint(sink.lines) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", sink.lines, tt.want)
			}
		})
	}
}

// TestLineLoggerHammer writes from several goroutines at once; run with
// -race. Every whole line written arrives whole.
func TestLineLoggerHammer(t *testing.T) {
	sink := &lineSink{}
	l := &lineLogger{log: sink.log, stream: "stdout"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = l.Write([]byte(`{"@level":"info","@message":"x"}` + "\n"))
			}
		})
	}
	wg.Wait()
	if len(sink.lines) != 800 {
		t.Fatalf("%d lines, want 800", len(sink.lines))
	}
	for _, ln := range sink.lines {
		if ln.msg != "x" {
			t.Fatalf("mangled line %+v", ln)
		}
	}
}
