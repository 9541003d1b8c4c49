package wasmrt

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/plugin/services"
)

// Host ceilings and defaults (hostapi/ABI.md §7). A plugin's limits may
// lower them, never raise them.
const (
	// MaxMemoryBytes is the default and the ceiling of a plugin's linear
	// memory.
	MaxMemoryBytes = 32 << 20
	// MaxReplyBytes is the default and the ceiling of a response envelope.
	MaxReplyBytes = 4 << 20
	// MaxStartTimeout is the default and the ceiling of a plugin's start
	// deadline: instantiating an instance, running its _initialize and
	// replaying Describe and Configure to it. It is the default of a
	// command plugin's start_timeout too.
	MaxStartTimeout = 10 * time.Second
	// pageSize is WebAssembly's page size.
	pageSize = 65536
)

// MaxCallTimeout returns the default and the ceiling of a call's deadline
// for a kind: issuer 30s, writer 5s, notifier 2s.
func MaxCallTimeout(k hostapi.Kind) time.Duration {
	switch k {
	case hostapi.KindIssuer:
		return 30 * time.Second
	case hostapi.KindWriter:
		return 5 * time.Second
	default:
		return 2 * time.Second
	}
}

// Limits lower the host ceilings for one plugin. Zero fields take the
// default; a field above its ceiling fails Open.
type Limits struct {
	// MemoryBytes caps the guest's linear memory, rounded down to whole
	// 64 KiB pages. Default and ceiling: 32 MiB.
	MemoryBytes uint64
	// CallTimeout is each call's deadline (the caller's context may set a
	// shorter one). Default and ceiling: [MaxCallTimeout] of the kind.
	CallTimeout time.Duration
	// MaxReplyBytes caps a response envelope. Default and ceiling: 4 MiB.
	MaxReplyBytes int
	// StartTimeout bounds the start of an instance: instantiation,
	// _initialize and, for an instance that replaces a discarded one, the
	// replay of Describe and Configure. It is not part of any call's
	// deadline (a call waits for the start, bounded by its context, then
	// gets its full CallTimeout). Default and ceiling: [MaxStartTimeout].
	StartTimeout time.Duration
	// LogLinesPerSecond caps the plugin's log lines (the log import, the
	// Logger host service, stdout and stderr together); the burst is twice
	// the rate. Default: 100.
	LogLinesPerSecond int
}

// The engines of Config.Engine.
const (
	EngineCompiler    = "compiler"
	EngineInterpreter = "interpreter"
)

// Config configures [Open].
type Config struct {
	// Path is the .wasm file. Required.
	Path string
	// SHA256 is the lowercase hex sha256 the file must have. Required
	// unless InsecureSkipChecksum.
	SHA256 string
	// InsecureSkipChecksum skips the pin, for development; every Open then
	// logs a warning.
	InsecureSkipChecksum bool
	// Kind is the plugin's kind; it selects the default call deadline and
	// whether WriteDir is allowed. Required.
	Kind hostapi.Kind
	// Name is the plugin's name in the agent's config, for messages and
	// log records. Required.
	Name string
	// Logger receives the plugin's log lines (tagged component=plugin,
	// plugin=Name) and the runtime's warnings. Default: slog.Default().
	Logger *slog.Logger
	// CacheDir is the on-disk compilation cache, created with mode 0700.
	// Empty disables the disk cache (every Open compiles).
	CacheDir string
	// Engine is wazero's engine: EngineCompiler (the default, also "") or
	// EngineInterpreter. The agent's config does not offer it: measured
	// on the Go-SDK notifier template, the interpreter opens a module in
	// 0.25 s instead of 1.6 s but holds 130 MB of it on the Go heap instead
	// of 22 MB of machine code (docs/PERFORMANCE.md §4), the wrong trade
	// for the edge devices it was meant for. It is here for bench/wasmrss
	// and the benchmarks that measure that.
	Engine string
	// Limits lower the host ceilings.
	Limits Limits
	// AllowHosts grants the HTTP host service for these hosts (see
	// services.HTTPConfig.AllowHosts). Empty: HTTP is not granted.
	AllowHosts []string
	// WriteDir is preopened as /out. Writers only; other kinds get no
	// filesystem at all.
	WriteDir string
	// Env is the guest's environment, and all of it. GOMEMLIMIT defaults to
	// 3/4 of the memory limit, so that Go guests collect garbage before
	// they hit it.
	Env map[string]string
	// Metrics grants the Metrics host service: the plugin's counters are
	// added to it, namespaced by Name. Nil: not granted.
	Metrics services.CounterSink
	// OnRestart is called, under the plugin's lock, each time a fresh
	// instance is started to replace a discarded one (not for the first
	// instance): right after the discard, or at the next call after a
	// replacement's start failed.
	// It must not block. Default: nothing.
	OnRestart func()
}

// resolved is a Config with defaults applied and ceilings checked.
type resolved struct {
	Config
	memPages     uint32
	callTimeout  time.Duration
	startTimeout time.Duration
	maxReply     int
}

func resolve(cfg Config) (resolved, error) {
	r := resolved{Config: cfg}
	switch cfg.Engine {
	case "", EngineCompiler, EngineInterpreter:
	default:
		return r, fmt.Errorf("configuring wasm plugin %q: unknown engine %q; use %q or %q", cfg.Name, cfg.Engine, EngineCompiler, EngineInterpreter)
	}
	if cfg.Name == "" {
		return r, fmt.Errorf("configuring wasm plugin %s: a name is required", cfg.Path)
	}
	if cfg.Path == "" {
		return r, fmt.Errorf("configuring plugin %q: a wasm path is required", cfg.Name)
	}
	switch cfg.Kind {
	case hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier:
	default:
		return r, fmt.Errorf("configuring plugin %q: unknown kind %q; want issuer, writer or notifier", cfg.Name, cfg.Kind)
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	mem := cfg.Limits.MemoryBytes
	if mem == 0 {
		mem = MaxMemoryBytes
	}
	if mem > MaxMemoryBytes {
		return r, fmt.Errorf("configuring plugin %q: limits memory %d MiB exceeds the ceiling of %d MiB", cfg.Name, mem>>20, MaxMemoryBytes>>20)
	}
	r.memPages = uint32(mem / pageSize)
	if r.memPages == 0 {
		return r, fmt.Errorf("configuring plugin %q: limits memory %d bytes is less than one 64 KiB page", cfg.Name, mem)
	}
	ceiling := MaxCallTimeout(cfg.Kind)
	r.callTimeout = cfg.Limits.CallTimeout
	if r.callTimeout == 0 {
		r.callTimeout = ceiling
	}
	if r.callTimeout < 0 || r.callTimeout > ceiling {
		return r, fmt.Errorf("configuring plugin %q: limits call timeout %s is outside (0, %s], the ceiling for a %s", cfg.Name, r.callTimeout, ceiling, cfg.Kind)
	}
	r.startTimeout = cfg.Limits.StartTimeout
	if r.startTimeout == 0 {
		r.startTimeout = MaxStartTimeout
	}
	if r.startTimeout < 0 || r.startTimeout > MaxStartTimeout {
		return r, fmt.Errorf("configuring plugin %q: limits start timeout %s is outside (0, %s]", cfg.Name, r.startTimeout, MaxStartTimeout)
	}
	r.maxReply = cfg.Limits.MaxReplyBytes
	if r.maxReply == 0 {
		r.maxReply = MaxReplyBytes
	}
	if r.maxReply < 0 || r.maxReply > MaxReplyBytes {
		return r, fmt.Errorf("configuring plugin %q: limits max reply %d bytes is outside (0, %d]", cfg.Name, r.maxReply, MaxReplyBytes)
	}
	if cfg.WriteDir != "" && cfg.Kind != hostapi.KindWriter {
		return r, fmt.Errorf("configuring plugin %q: an output directory is only for writers, and this is a %s", cfg.Name, cfg.Kind)
	}
	return r, nil
}
