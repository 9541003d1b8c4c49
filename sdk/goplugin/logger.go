//go:build !wasip1

package goplugin

import (
	"io"
	"log/slog"
	"os"
)

// stderr is the process's standard error as it was at start: go-plugin
// replaces os.Stderr once it serves.
var stderr = os.Stderr

// Logger returns a logger for plugin code that writes hclog-compatible
// JSON lines ("@level", "@message", "@timestamp") to the plugin's standard
// error, which the agent re-emits through its own log tagged with the
// plugin. Plugin code may also log through sdk.HostFromContext(ctx).Log,
// which the agent rate-limits the same way.
func Logger() *slog.Logger { return newLogger(stderr, slog.LevelInfo) }

func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				a.Key = "@timestamp"
			case slog.MessageKey:
				a.Key = "@message"
			case slog.LevelKey:
				a.Key = "@level"
				a.Value = slog.StringValue(hclogLevel(a.Value.Any().(slog.Level)))
			}
			return a
		},
	}))
}

// hclogLevel names level as hclog does.
func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}
