package subproc

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

// TestLineLoggerCapsLongLines: a line of 1 MiB is logged once, cut to
// MaxOutputLine bytes with a marker that counts the rest; the buffer never
// holds more than MaxOutputLine.
func TestLineLoggerCapsLongLines(t *testing.T) {
	sink := &lineSink{}
	l := &lineLogger{log: sink.log, stream: "stderr"}
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < len(big); i += 4096 { // as a pipe delivers it
		_, _ = l.Write([]byte(big[i : i+4096]))
		if cap(l.buf) > 2*MaxOutputLine {
			t.Fatalf("line buffer grew to %d bytes", cap(l.buf))
		}
	}
	_, _ = l.Write([]byte("\nnext\n"))
	if len(sink.lines) != 2 || sink.lines[1].msg != "next" {
		t.Fatalf("got %d lines, want the cut line and %q", len(sink.lines), "next")
	}
	want := strings.Repeat("x", MaxOutputLine) + fmt.Sprintf(" [… cut: the line had %d bytes; lines are logged up to %d bytes]", 1<<20, MaxOutputLine)
	if sink.lines[0].msg != want {
		t.Fatalf("cut line is %d bytes ending %q, want %d bytes", len(sink.lines[0].msg), sink.lines[0].msg[len(sink.lines[0].msg)-60:], len(want))
	}
}

// TestLineLoggerEscapesControlBytes: terminal escapes, BEL, CR, DEL, C1
// controls and invalid UTF-8 reach the log as text, in plain lines and in
// hclog JSON messages and fields alike.
func TestLineLoggerEscapesControlBytes(t *testing.T) {
	sink := &lineSink{}
	l := &lineLogger{log: sink.log, stream: "stderr"}
	_, _ = l.Write([]byte("\x1b[2J\x1b[31mred\x07 a\rb\x7f \u0085 \xff tab\tok é\n"))
	_, _ = l.Write([]byte(`{"@level":"info","@message":"\u001b]0;title\u0007","f":"\u001b[1m"}` + "\n"))
	want := []line{
		{slog.LevelInfo, `\x1b[2J\x1b[31mred\x07 a\x0db\x7f \u0085 \xff tab` + "\t" + `ok é`, "stream=stderr"},
		{slog.LevelInfo, `\x1b]0;title\x07`, `f=\x1b[1m`},
	}
	if fmt.Sprint(sink.lines) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", sink.lines, want)
	}
}

// TestOutputLimit: past the bursts, lines are dropped and counted, and the
// count is logged at most once per DropSummaryInterval, however many
// lines are dropped.
func TestOutputLimit(t *testing.T) {
	now := time.Unix(1e9, 0)
	sink := &lineSink{}
	lim := newOutputLimit(func() time.Time { return now })
	stderr := &lineLogger{log: sink.log, stream: "stderr", limit: lim}
	stdout := &lineLogger{log: sink.log, stream: "stdout", limit: lim}
	kib := strings.Repeat("k", 1023) + "\n"
	for range 500 {
		_, _ = stderr.Write([]byte(kib))
		_, _ = stdout.Write([]byte(kib))
	}
	count := func() (logged, summaries int, dropped []string) {
		for _, ln := range sink.lines {
			if ln.msg == "plugin output dropped by the rate limit" {
				summaries++
				dropped = append(dropped, ln.attrs)
			} else {
				logged++
			}
		}
		return
	}
	// The line burst (2 × 50) binds before the byte burst (256 KiB).
	if logged, summaries, dropped := count(); logged != 2*OutputLinesPerSecond || summaries != 1 || !strings.Contains(dropped[0], "dropped_lines=1 dropped_bytes=1023") {
		t.Fatalf("in the first instant: %d lines logged, %d summaries %q; want %d and one summary of the first drop", logged, summaries, dropped, 2*OutputLinesPerSecond)
	}
	now = now.Add(DropSummaryInterval)
	_, _ = stderr.Write([]byte("after a second\n"))
	logged, summaries, dropped := count()
	if logged != 2*OutputLinesPerSecond+1 || summaries != 2 || !strings.Contains(dropped[1], "dropped_lines=899 dropped_bytes=919677") {
		t.Fatalf("a second later: %d lines logged, %d summaries %q; want the line and a summary of 899 drops", logged, summaries, dropped)
	}
	// 1 MiB lines, a second apart: each is cut, and the byte budget lets
	// them through at the line rate at most.
	for range 10 {
		now = now.Add(time.Second)
		_, _ = stderr.Write([]byte(strings.Repeat("m", 1<<20) + "\n"))
	}
	if logged, _, _ := count(); logged != 2*OutputLinesPerSecond+11 {
		t.Fatalf("%d lines logged, want every cut 1 MiB line", logged)
	}
}
