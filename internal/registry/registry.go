package registry

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
)

// Env is what the host hands a plugin when it builds it.
type Env struct {
	// Logger is tagged with the plugin's component and name.
	Logger *slog.Logger
	// Name is the plugin instance's name, for messages.
	Name string
}

// Module is a built-in plugin.
type Module struct {
	// ID is "<kind>.<name>", for example "writer.files".
	ID string
	// NewConfig returns a pointer to a config struct with its defaults set.
	// The config loader decodes the plugin's block into it (gohcl tags),
	// then calls its Validate method if it has one:
	//	Validate() error // returning hostapi.FieldErrors
	NewConfig func() any
	// New builds the plugin from a decoded, validated config. It returns a
	// hostapi.Issuer, Writer or Notifier matching the ID's kind.
	New func(cfg any, env Env) (any, error)
}

// Kind returns the module's kind, the ID's first part.
func (m Module) Kind() hostapi.Kind {
	k, _, _ := strings.Cut(m.ID, ".")
	return hostapi.Kind(k)
}

// Name returns the ID's second part.
func (m Module) Name() string {
	_, n, _ := strings.Cut(m.ID, ".")
	return n
}

var (
	mu      sync.RWMutex
	modules = map[string]Module{}
)

// Register adds m. It panics on a malformed or duplicate ID.
func Register(m Module) {
	kind, name, ok := strings.Cut(m.ID, ".")
	if !ok || name == "" || (kind != string(hostapi.KindIssuer) && kind != string(hostapi.KindWriter) && kind != string(hostapi.KindNotifier)) {
		panic(fmt.Sprintf("registry: malformed module ID %q: want issuer.NAME, writer.NAME or notifier.NAME", m.ID))
	}
	if m.NewConfig == nil || m.New == nil {
		panic(fmt.Sprintf("registry: module %q lacks NewConfig or New", m.ID))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := modules[m.ID]; dup {
		panic(fmt.Sprintf("registry: module %q registered twice", m.ID))
	}
	modules[m.ID] = m
}

// Lookup returns the module with the given kind and name.
func Lookup(kind hostapi.Kind, name string) (Module, bool) {
	mu.RLock()
	defer mu.RUnlock()
	m, ok := modules[string(kind)+"."+name]
	return m, ok
}

// Names returns the names of the registered modules of kind, sorted.
func Names(kind hostapi.Kind) []string {
	mu.RLock()
	defer mu.RUnlock()
	var names []string
	for id, m := range modules {
		if m.Kind() == kind {
			names = append(names, id[len(kind)+1:])
		}
	}
	sort.Strings(names)
	return names
}

// RegisterIssuer registers the issuer name ("issuer.NAME"), typed: the
// config is a *C with its defaults from newConfig, and build returns a
// hostapi.Issuer, so a module of the wrong kind or config type does not
// compile. The config build gets has passed the config loader, which
// decoded it and ran its Validate method, if any.
func RegisterIssuer[C any](name string, newConfig func() *C, build func(*C, Env) (hostapi.Issuer, error)) {
	register(hostapi.KindIssuer, name, newConfig, build)
}

// RegisterWriter registers the writer name ("writer.NAME"), typed as
// RegisterIssuer is.
func RegisterWriter[C any](name string, newConfig func() *C, build func(*C, Env) (hostapi.Writer, error)) {
	register(hostapi.KindWriter, name, newConfig, build)
}

// RegisterNotifier registers the notifier name ("notifier.NAME"), typed
// as RegisterIssuer is.
func RegisterNotifier[C any](name string, newConfig func() *C, build func(*C, Env) (hostapi.Notifier, error)) {
	register(hostapi.KindNotifier, name, newConfig, build)
}

func register[C, P any](kind hostapi.Kind, name string, newConfig func() *C, build func(*C, Env) (P, error)) {
	id := string(kind) + "." + name
	Register(Module{
		ID:        id,
		NewConfig: func() any { return newConfig() },
		New: func(cfg any, env Env) (any, error) {
			c, ok := cfg.(*C)
			if !ok {
				var want *C
				return nil, fmt.Errorf("building %s: config is %T, want %T", id, cfg, want)
			}
			return build(c, env)
		},
	})
}
