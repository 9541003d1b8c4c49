package load

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/metrics"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"google.golang.org/protobuf/proto"
)

// Conn is a runtime's connection to one plugin, with the host services it
// was granted (for Describe).
type Conn interface {
	adapter.Conn
	HostServices() []string
}

// Env is what the host gives the plugins it opens.
type Env struct {
	// Logger receives the plugins' log lines. Required.
	Logger *slog.Logger
	// StateDir holds a subprocess plugin's pinned copy and socket. Empty:
	// a temporary directory per plugin, removed when it is closed.
	StateDir string
	// CacheDir is the WASM compilation cache. Empty: none.
	CacheDir string
	// Metrics, when set, counts and times every call, counts restarts and
	// grants the Metrics host service.
	Metrics *metrics.Metrics
	// OnRestart is called when the runtime starts the plugin again after
	// a crash (not for the first start). Optional.
	OnRestart func()
}

// Open opens the plugin block e as a plugin of kind e.Kind.
func Open(ctx context.Context, e *config.External, env Env) (Conn, error) {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	var c Conn
	var err error
	switch e.Runtime {
	case config.RuntimeWASM:
		c, err = openWASM(ctx, e, env)
	case config.RuntimeCommand:
		c, err = openCommand(ctx, e, env)
	default:
		return nil, fmt.Errorf("opening plugin %q: unknown runtime %q", e.Name, e.Runtime)
	}
	if err != nil {
		return nil, err
	}
	if env.Metrics == nil {
		return c, nil
	}
	return &instrumented{Conn: c, m: env.Metrics, plugin: e.Name, runtime: e.Runtime}, nil
}

// sink is env's metrics as the host services take them: a nil interface,
// not a typed nil, when there are none.
func (env Env) sink() services.CounterSink {
	if env.Metrics == nil {
		return nil
	}
	return env.Metrics
}

func openWASM(ctx context.Context, e *config.External, env Env) (Conn, error) {
	return wasmrt.Open(ctx, wasmrt.Config{
		Path:                 e.Path,
		SHA256:               e.SHA256,
		InsecureSkipChecksum: e.InsecureSkipChecksum,
		Kind:                 e.Kind,
		Name:                 e.Name,
		Logger:               env.Logger,
		CacheDir:             env.CacheDir,
		Limits: wasmrt.Limits{
			MemoryBytes:   e.Limits.MemoryBytes,
			CallTimeout:   e.Limits.Timeout,
			MaxReplyBytes: e.Limits.MaxReplyBytes,
			StartTimeout:  e.StartTimeout,
		},
		AllowHosts: e.AllowHosts,
		WriteDir:   e.WriteDir,
		Metrics:    env.sink(),
		OnRestart:  env.OnRestart,
	})
}

// grants are the host services a subprocess plugin gets: the Logger
// always, Metrics with env's metrics, and HTTP when it is a notifier with
// allow { hosts }.
func grants(e *config.External, env Env) (*services.Services, error) {
	svc := &services.Services{Logger: services.NewLogger(env.Logger, e.Name, 0)}
	if env.Metrics != nil {
		svc.Metrics = services.NewMetrics(env.Metrics, e.Name)
	}
	if e.Kind == hostapi.KindNotifier && len(e.AllowHosts) > 0 {
		web, err := services.NewHTTP(services.HTTPConfig{AllowHosts: e.AllowHosts, MaxBodyBytes: int64(e.Limits.MaxReplyBytes)})
		if err != nil {
			return nil, err
		}
		svc.HTTP = web
	}
	return svc, nil
}

// Check does at once what Open of e would refuse without running
// anything: a runtime this build lacks, and a file that does not match its
// sha256 pin (Open checks again what it runs). The agent checks a plugin
// it starts in the background with it, so that these still fail its start.
func Check(e *config.External) error {
	if e.Runtime == config.RuntimeCommand {
		if err := CommandRuntimeErr(); err != nil {
			return fmt.Errorf("opening plugin %q: %w", e.Name, err)
		}
	}
	if e.InsecureSkipChecksum || e.SHA256 == "" { // the runtime says what to do about a missing pin
		return nil
	}
	sum, err := HashFile(e.Path)
	if err != nil {
		return err
	}
	if !strings.EqualFold(sum, e.SHA256) {
		return wasmrt.PinMismatch(e.Name, e.Path, e.SHA256, sum)
	}
	return nil
}

// HashFile returns the lowercase hex sha256 of the file at path, as
// `svidagent plugin hash` prints it and a plugin block pins it.
func HashFile(path string) (string, error) { return wasmrt.HashFile(path) }

// Info is what `plugin inspect` learns of a plugin file.
type Info struct {
	ABIVersions  []string
	SHA256       string
	Name         string
	Version      string
	Services     []string
	Capabilities []string
}

// Inspect asks the plugin at path what it is. A WASM module is compiled
// and checked for the svidagent_abi_* marker before any of its code runs,
// in the sandbox. A subprocess plugin is executed: with pin, what runs is
// the pinned copy of the bytes that hashed to pin; without, the caller
// has decided to run the file unchecked.
func Inspect(ctx context.Context, runtime, path, pin string) (Info, error) {
	if runtime == config.RuntimeWASM {
		i, err := wasmrt.Inspect(ctx, path, "")
		return Info{ABIVersions: i.ABIVersions, SHA256: i.SHA256, Name: i.Name, Version: i.Version,
			Services: i.Services, Capabilities: i.Capabilities}, err
	}
	return inspectCommand(ctx, path, pin)
}

// instrumented counts and times the calls into a plugin.
type instrumented struct {
	Conn
	m       *metrics.Metrics
	plugin  string
	runtime string
}

func (c *instrumented) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	start := time.Now()
	err := c.Conn.Invoke(ctx, method, req, resp)
	c.m.PluginCall(c.plugin, c.runtime, method[strings.LastIndexByte(method, '/')+1:], time.Since(start), err)
	return err
}

// SHA256 passes the runtime's through: the hash of what runs.
func (c *instrumented) SHA256() string {
	if h, ok := c.Conn.(interface{ SHA256() string }); ok {
		return h.SHA256()
	}
	return ""
}

// HostPaths passes the runtime's mapping through (adapter.PathMapper).
func (c *instrumented) HostPaths(paths []string) ([]string, error) {
	if m, ok := c.Conn.(adapter.PathMapper); ok {
		return m.HostPaths(paths)
	}
	return paths, nil
}

var _ adapter.PathMapper = (*instrumented)(nil)

// CheckWASMExports reads the module at path and checks the names of its
// exports against hostapi/ABI.md §2 statically, before anything is
// compiled. It returns the exported function names it found (nil when the
// bytes cannot be parsed; compiling then says why).
func CheckWASMExports(path string) (exports []string, err error) { return wasmrt.CheckFile(path) }
