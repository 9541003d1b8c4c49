package conformance

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/inproc"
)

// Target is the plugin under test. Exactly one of Path, Impl and NewImpl
// is set.
type Target struct {
	// Kind is the kind the plugin is tested as. Required.
	Kind hostapi.Kind
	// Path is a .wasm module (by its extension) or a go-plugin executable.
	Path string
	// Impl is an in-process implementation, as written for the SDK: a
	// hostapi.Issuer, Writer or Notifier, optionally an sdk.Configurer and
	// an io.Closer. It is served through the SDK's own dispatcher, with the
	// same protobuf encoding as the runtimes. The one value is shared by
	// every check; prefer NewImpl when Close makes it unusable.
	Impl any
	// NewImpl returns a fresh in-process implementation; the suite calls
	// it for each plugin instance it opens.
	NewImpl func() any
	// Info is the in-process implementation's answer to Describe.
	// Default: Name "inprocess", Version "0.0.0".
	Info sdk.Info
	// SHA256 pins Path. Default: computed from the file.
	SHA256 string
	// ConfigJSON is a valid config block, as JSON. Default: the example
	// config the plugin answers in Describe (example_config_json,
	// sdk.Info.ExampleConfigJSON), else "{}".
	ConfigJSON []byte
	// InvalidConfigJSON is a config the plugin must reject in Validate
	// and Configure. Default: an object with one unknown attribute.
	InvalidConfigJSON []byte
	// CacheDir is the WASM compilation cache shared by the suite's
	// instances. Default: a temporary directory per Run (every module
	// then compiles once per Run).
	CacheDir string
	// AllowHosts grants the HTTP host service for these hosts, as the
	// plugin block's allow { hosts = [...] } does.
	AllowHosts []string
	// Logger receives the plugins' log lines. Default: discarded.
	Logger *slog.Logger

	// Issuers.

	// SPIFFEID is the identity the suite asks for. Default:
	// "spiffe://example.org/conformance".
	SPIFFEID string
	// TTL is the lifetime the suite asks for. Default: 10 minutes.
	TTL time.Duration
	// BackendDown takes the issuer's backend down (stops a fake server,
	// say); the suite then expects Issue to fail with an error. Without
	// it, issue_backend_down is not applicable. It is called once, by the
	// last issuer check.
	BackendDown func()

	// Writers.

	// OutputDir is the directory the writer's config writes to; a WASM
	// writer gets it preopened as /out. It is created (0700) if missing.
	// Default: a temporary directory, removed after the run (a go-plugin
	// writer, whose config names its directory, needs it set).
	OutputDir string
	// Modes are the modes the config asks for, by file name. Without
	// them, write_modes checks that a file holding a private key is
	// readable by its owner only.
	Modes map[string]fs.FileMode

	// Notifiers.

	// FailingConfigJSON is a valid config under which Notify must fail
	// (a URL that answers 500, a pid file that does not exist). Without
	// it, notify_errors checks that Configure with InvalidConfigJSON
	// answers an error.
	FailingConfigJSON []byte
}

// runtime names how the target is run.
type runtime string

const (
	runtimeWASM      runtime = "wasm"
	runtimeGoPlugin  runtime = "goplugin"
	runtimeInProcess runtime = "inprocess"
)

// suite is one run of the checks over a target, with defaults applied.
type suite struct {
	t        Target
	rt       runtime
	stateDir string // go-plugin pins; removed by close
	tmpDirs  []string
	info     adapter.Info // from the negotiation check; zero until then
	// example is the plugin's example config from Describe; it is
	// ConfigJSON when the target set none (exampleUsed).
	example     []byte
	exampleUsed bool
	configGiven bool
	creds       *testCreds
}

// newSuite validates t and applies its defaults.
func newSuite(t Target) (*suite, error) {
	switch t.Kind {
	case hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier:
	default:
		return nil, fmt.Errorf("configuring the conformance target: unknown kind %q; want issuer, writer or notifier", t.Kind)
	}
	s := &suite{t: t}
	n := 0
	if t.Path != "" {
		n++
		if strings.HasSuffix(t.Path, ".wasm") {
			s.rt = runtimeWASM
		} else {
			s.rt = runtimeGoPlugin
		}
	}
	if t.Impl != nil {
		n++
		s.rt = runtimeInProcess
	}
	if t.NewImpl != nil {
		n++
		s.rt = runtimeInProcess
	}
	if n != 1 {
		return nil, fmt.Errorf("configuring the conformance target: set exactly one of Path, Impl and NewImpl (%d set)", n)
	}
	s.configGiven = len(s.t.ConfigJSON) > 0
	if !s.configGiven {
		s.t.ConfigJSON = []byte("{}")
	}
	if len(s.t.InvalidConfigJSON) == 0 {
		s.t.InvalidConfigJSON = []byte(`{"` + unknownKey + `":true}`)
	}
	if s.t.Info.Name == "" {
		s.t.Info.Name = "inprocess"
	}
	if s.t.Info.Version == "" {
		s.t.Info.Version = "0.0.0"
	}
	if s.t.SPIFFEID == "" {
		s.t.SPIFFEID = "spiffe://example.org/conformance"
	}
	if s.t.TTL == 0 {
		s.t.TTL = 10 * time.Minute
	}
	if s.t.Logger == nil {
		s.t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.Kind == hostapi.KindWriter {
		if err := s.outputDir(); err != nil {
			s.close()
			return nil, fmt.Errorf("configuring the conformance target: %w", err)
		}
	}
	if s.rt != runtimeInProcess && s.t.SHA256 == "" {
		sum, err := load.HashFile(t.Path)
		if err != nil {
			return nil, fmt.Errorf("configuring the conformance target: %w", err)
		}
		s.t.SHA256 = sum
	}
	if s.rt == runtimeWASM && s.t.CacheDir == "" {
		d, err := os.MkdirTemp("", "svidagent-conformance-cache-")
		if err != nil {
			return nil, fmt.Errorf("configuring the conformance target: %w", err)
		}
		s.tmpDirs = append(s.tmpDirs, d)
		s.t.CacheDir = d
	}
	if s.rt == runtimeGoPlugin {
		d, err := os.MkdirTemp("", "svidagent-conformance-state-")
		if err != nil {
			return nil, fmt.Errorf("configuring the conformance target: %w", err)
		}
		s.tmpDirs = append(s.tmpDirs, d)
		s.stateDir = d
	}
	creds, err := newTestCreds(s.t.SPIFFEID)
	if err != nil {
		return nil, fmt.Errorf("configuring the conformance target: %w", err)
	}
	s.creds = creds
	return s, nil
}

// outputDir makes sure a writer's output directory exists: a temporary
// one when none is set, created 0700 when missing. A WASM guest would
// otherwise find no /out and fail with an errno ("mkdir /out: Bad file
// number") that does not name the directory.
func (s *suite) outputDir() error {
	if s.t.OutputDir == "" {
		d, err := os.MkdirTemp("", "svidagent-conformance-out-")
		if err != nil {
			return fmt.Errorf("creating a temporary output directory: %w", err)
		}
		s.tmpDirs = append(s.tmpDirs, d)
		s.t.OutputDir = d
		return nil
	}
	if err := os.MkdirAll(s.t.OutputDir, 0o700); err != nil {
		return fmt.Errorf("creating the writer's output directory: %w", err)
	}
	fi, err := os.Stat(s.t.OutputDir)
	if err != nil {
		return fmt.Errorf("reading the writer's output directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the writer's output directory %s is not a directory", s.t.OutputDir)
	}
	return nil
}

func (s *suite) close() {
	for _, d := range s.tmpDirs {
		_ = os.RemoveAll(d)
	}
}

// name names the target in reports.
func (s *suite) name() string {
	if s.t.Path != "" {
		return filepath.Base(s.t.Path)
	}
	return s.t.Info.Name
}

// instance is one opened plugin instance.
type instance struct {
	conn adapter.Conn
	// mem reads a WASM instance's linear memory size; nil for others.
	mem interface{ MemoryBytes() (uint32, bool) }
}

// dial opens a fresh connection to the plugin, without calling anything.
func (s *suite) dial(ctx context.Context) (*instance, error) {
	name := "conformance"
	switch s.rt {
	case runtimeWASM, runtimeGoPlugin:
		e := &config.External{Name: name, Kind: s.t.Kind, Path: s.t.Path, SHA256: s.t.SHA256,
			Runtime: config.RuntimeCommand, AllowHosts: s.t.AllowHosts}
		if s.rt == runtimeWASM {
			e.Runtime = config.RuntimeWASM
			if s.t.Kind == hostapi.KindWriter {
				e.WriteDir = s.t.OutputDir
			}
		}
		c, err := load.Open(ctx, e, load.Env{Logger: s.t.Logger, StateDir: s.stateDir, CacheDir: s.t.CacheDir})
		if err != nil {
			return nil, err
		}
		mem, _ := c.(interface{ MemoryBytes() (uint32, bool) })
		return &instance{conn: c, mem: mem}, nil
	default:
		impl := s.t.Impl
		if s.t.NewImpl != nil {
			impl = s.t.NewImpl()
		}
		d, err := inproc.New(s.t.Info, impl, nil)
		if err != nil {
			return nil, err
		}
		return &instance{conn: adapter.NewLocalConn(d)}, nil
	}
}

// hostServices returns what Describe tells the plugin it was granted.
func (s *suite) hostServices() []string {
	out := []string{adapter.ServiceLogger}
	if len(s.t.AllowHosts) > 0 {
		out = append(out, adapter.ServiceHTTP)
	}
	return out
}

// settings returns the adapter's settings for config.
func (s *suite) settings(config []byte) adapter.Settings {
	return adapter.Settings{Kind: s.t.Kind, Name: "conformance", ConfigJSON: config, Logger: s.t.Logger,
		HostVersion: "conformance", HostServices: s.hostServices(), BreakerThreshold: 1 << 30}
}

// open dials the plugin and opens it with config: Describe, negotiation,
// Validate and Configure. The caller closes the returned plugin.
func (s *suite) open(ctx context.Context, config []byte) (*adapter.Plugin, *instance, error) {
	inst, err := s.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := adapter.Open(ctx, inst.conn, s.settings(config))
	if err != nil {
		return nil, nil, err
	}
	return p, inst, nil
}
