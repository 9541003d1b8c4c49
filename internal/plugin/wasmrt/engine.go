package wasmrt

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// An engine is a wazero runtime shared by every plugin opened with the same
// compilation cache directory (in an agent: all of them), with WASI and the
// svidagent_host_v1 module instantiated in it once, and the modules
// compiled in it, one per sha256. Ten plugins of the same .wasm thus hold
// one copy of its machine code (~40 MB for a Go guest) instead of ten, and
// only the first Open of a module compiles it.
//
// What is shared is only what is the same for every plugin: compiled code,
// WASI's and the host module's functions. Each plugin still instantiates
// the module itself, with its own linear memory (capped per plugin by
// [limitedMemory], not by the runtime), environment, filesystem mount,
// stdout/stderr and sleep hook (the module config), and the host module's
// functions reach the plugin's grants only through the calling instance,
// which the host puts in the context of every call it makes into the guest
// (instanceKey); a guest cannot name another plugin's instance.
type engine struct {
	key   engineKey
	dir   string // the compilation cache directory
	rt    wazero.Runtime
	cache wazero.CompilationCache

	// Under enginesMu.
	refs    int
	modules map[string]*module
}

// A module is one compiled module in an engine.
type module struct {
	ready    chan struct{} // closed once compiled or err is set
	compiled wazero.CompiledModule
	err      error
	refs     int // under enginesMu
}

// engineKey tells engines apart: one per cache directory and engine kind.
type engineKey struct{ dir, kind string }

var (
	enginesMu sync.Mutex
	engines   = map[engineKey]*engine{}
)

// acquireEngine returns the engine for cacheDir and kind (Config.Engine),
// creating it on first use, with a reference the caller gives back with
// release.
func acquireEngine(ctx context.Context, cacheDir, kind string) (*engine, error) {
	if kind == "" {
		kind = EngineCompiler
	}
	key := engineKey{cacheDir, kind}
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e := engines[key]; e != nil {
		e.refs++
		return e, nil
	}
	e := &engine{key: key, dir: cacheDir, refs: 1, modules: map[string]*module{}}
	// The runtime's memory limit is the ceiling; each plugin's own limit
	// is enforced by its instances' memory allocator.
	rc := wazero.NewRuntimeConfigCompiler()
	if kind == EngineInterpreter {
		rc = wazero.NewRuntimeConfigInterpreter()
	}
	rc = rc.WithCloseOnContextDone(true).
		WithMemoryLimitPages(MaxMemoryBytes / pageSize)
	if cacheDir != "" {
		cache, err := openCache(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("opening the compilation cache: %w", err)
		}
		e.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	e.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		e.close()
		return nil, fmt.Errorf("instantiating WASI: %w", err)
	}
	if err := instantiateHost(ctx, e.rt); err != nil {
		e.close()
		return nil, fmt.Errorf("instantiating the host module: %w", err)
	}
	engines[key] = e
	return e, nil
}

// release gives back a reference from acquireEngine; the last one closes
// the runtime (and with it every compiled module and instance) and the
// cache.
func (e *engine) release() {
	enginesMu.Lock()
	e.refs--
	last := e.refs == 0
	if last {
		delete(engines, e.key)
	}
	enginesMu.Unlock()
	if last {
		e.close()
	}
}

func (e *engine) close() {
	ctx := context.Background()
	if e.rt != nil {
		_ = e.rt.Close(ctx)
	}
	if e.cache != nil {
		_ = e.cache.Close(ctx)
	}
}

// compile returns the module with the given sha256 compiled from code,
// compiling it only if no plugin holds it already, with a reference the
// caller gives back with releaseModule. Concurrent Opens of one module
// wait for a single compile.
func (e *engine) compile(ctx context.Context, sum string, code []byte) (*module, error) {
	for {
		enginesMu.Lock()
		m := e.modules[sum]
		if m == nil {
			m = &module{ready: make(chan struct{}), refs: 1}
			e.modules[sum] = m
			enginesMu.Unlock()
			m.compiled, m.err = e.rt.CompileModule(ctx, code)
			enginesMu.Lock()
			if m.err != nil {
				delete(e.modules, sum)
			}
			close(m.ready)
			enginesMu.Unlock()
			if m.err != nil {
				return nil, m.err
			}
			return m, nil
		}
		m.refs++
		enginesMu.Unlock()
		select {
		case <-m.ready:
		case <-ctx.Done():
			e.releaseModule(sum, m)
			return nil, ctx.Err()
		}
		if m.err == nil {
			return m, nil
		}
		// The other Open's compile failed (perhaps only its context
		// ended) and removed the entry: compile again, ourselves.
		e.releaseModule(sum, m)
	}
}

// releaseModule gives back a reference from compile; the last one closes
// the compiled module.
func (e *engine) releaseModule(sum string, m *module) {
	enginesMu.Lock()
	m.refs--
	last := m.refs == 0 && m.err == nil
	if last && e.modules[sum] == m {
		delete(e.modules, sum)
	}
	enginesMu.Unlock()
	if last && m.compiled != nil {
		_ = m.compiled.Close(context.Background())
	}
}

// openCache creates dir with mode 0700 (tightening an existing one) and
// opens wazero's file cache in it.
//
// What keeps entries apart: wazero keys a compiled module by the sha256 of
// the module's bytes together with the compile-affecting runtime settings
// (whether CloseOnContextDone is on, function listeners), the CPU features
// and, in a per-version subdirectory, the wazero version. A module with a
// different sha256, or compiled with a different CloseOnContextDone, can
// therefore never be served another's code. The memory limit is applied at
// instantiation and is not part of the compiled code.
func openCache(dir string) (wazero.CompilationCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	return wazero.NewCompilationCacheWithDir(dir)
}
