package services

import (
	"context"
	"log/slog"
	"sync"
	"time"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultLogLinesPerSecond is the log rate a plugin gets by default; the
// burst is twice the rate.
const DefaultLogLinesPerSecond = 100

// Logger is the svidagent.host.v1.Logger service: it writes a plugin's log
// lines to the agent's log, tagged component=plugin and plugin=<name>, at
// most a configured number of lines per second. Excess lines are dropped
// and counted; when lines are accepted again, one summary line reports how
// many were dropped (at most one summary a second; the count carries over). Logger is safe for concurrent use.
type Logger struct {
	hostv1.UnimplementedLoggerServer

	log   *slog.Logger
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped uint64
	summed  time.Time // when the last summary was logged
}

// summaryInterval is the least time between two summaries of dropped
// lines: under a sustained flood every accepted line follows a drop, and a
// summary before each would itself be a flood.
const summaryInterval = time.Second

// NewLogger returns a Logger writing to log for the plugin named plugin.
// linesPerSecond ≤ 0 means [DefaultLogLinesPerSecond]; the burst is twice
// the rate.
func NewLogger(log *slog.Logger, plugin string, linesPerSecond int) *Logger {
	if linesPerSecond <= 0 {
		linesPerSecond = DefaultLogLinesPerSecond
	}
	l := &Logger{
		log:   log.With("component", "plugin", "plugin", plugin),
		rate:  float64(linesPerSecond),
		burst: 2 * float64(linesPerSecond),
		now:   time.Now,
	}
	l.tokens = l.burst
	return l
}

// Log implements hostv1.LoggerServer. A line over the rate limit is
// dropped and answered with RESOURCE_EXHAUSTED; callers may ignore that.
func (l *Logger) Log(ctx context.Context, req *hostv1.LogRequest) (*hostv1.LogResponse, error) {
	attrs := make([]any, 0, len(req.GetAttrs())+1)
	a := req.GetAttrs()
	for i := 0; i < len(a); i += 2 {
		v := ""
		if i+1 < len(a) {
			v = a[i+1]
		}
		attrs = append(attrs, slog.String(adapter.BoundText(a[i]), adapter.BoundText(v)))
	}
	if !l.Line(ctx, slog.Level(req.GetLevel()), req.GetMessage(), attrs...) {
		return nil, status.Errorf(codes.ResourceExhausted, "log rate limit of %d lines/s exceeded; line dropped", int(l.rate))
	}
	return &hostv1.LogResponse{}, nil
}

// Line logs msg at level with args (as slog.Logger.Log takes them) unless
// the rate limit is exceeded, and reports whether it was logged. It serves
// the WASM `log` import and the plugin's stdout and stderr. msg and the
// strings among args are the plugin's: they are logged bounded by
// [adapter.BoundText] (escaped, at most [adapter.MaxTextBytes] each).
func (l *Logger) Line(ctx context.Context, level slog.Level, msg string, args ...any) bool {
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		l.mu.Unlock()
		return false
	}
	l.tokens--
	var dropped uint64
	if l.dropped > 0 && (l.summed.IsZero() || now.Sub(l.summed) >= summaryInterval) {
		dropped, l.dropped, l.summed = l.dropped, 0, now
	}
	l.mu.Unlock()

	if dropped > 0 {
		l.summary(ctx, dropped)
	}
	l.log.Log(ctx, level, adapter.BoundText(msg), boundArgs(args)...)
	return true
}

// boundArgs bounds the strings among args (keys and values, or
// slog.Attrs), which may be the plugin's (an hclog line's attributes).
func boundArgs(args []any) []any {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = adapter.BoundText(v)
		case slog.Attr:
			if v.Value.Kind() == slog.KindString {
				args[i] = slog.String(adapter.BoundText(v.Key), adapter.BoundText(v.Value.String()))
			} else {
				args[i] = slog.Attr{Key: adapter.BoundText(v.Key), Value: v.Value}
			}
		}
	}
	return args
}

// Flush logs the summary of lines dropped since the last logged line, if
// any. Call it when the plugin is closed.
func (l *Logger) Flush(ctx context.Context) {
	l.mu.Lock()
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		l.summary(ctx, dropped)
	}
}

// Dropped returns the number of lines dropped and not yet summarised.
func (l *Logger) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

func (l *Logger) summary(ctx context.Context, dropped uint64) {
	l.log.Log(ctx, slog.LevelWarn, "plugin log lines dropped by the rate limit",
		"dropped", dropped, "lines_per_second", int(l.rate))
}
