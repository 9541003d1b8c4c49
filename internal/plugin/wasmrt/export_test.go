package wasmrt

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero/experimental"
)

// SharedRefs returns how many plugins hold the engine of cacheDir and the
// module with sha256 sum in it (0 when there is none), for tests.
func SharedRefs(cacheDir, sum string) (engineRefs, moduleRefs int) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	e := engines[engineKey{cacheDir, EngineCompiler}]
	if e == nil {
		return 0, 0
	}
	if m := e.modules[sum]; m != nil {
		moduleRefs = m.refs
	}
	return e.refs, moduleRefs
}

// WaitStart waits until the instance p is starting, if any, is started or
// has failed, and reports whether there was one.
func WaitStart(p *Plugin) bool {
	p.mu.Lock()
	st := p.starting
	p.mu.Unlock()
	if st == nil {
		return false
	}
	<-st.done
	return true
}

// freeSpy records whether Free was called on the memory it wraps.
type freeSpy struct {
	experimental.LinearMemory
	freed bool
}

func (s *freeSpy) Free() { s.freed = true; s.LinearMemory.Free() }

// CloseFreesClosedModule starts an instance of p, closes its module the
// way wazero's deadline watcher does when a call's deadline fires as the
// guest returns (closed, resources not freed), and reports whether wazero
// freed its linear memory by then and whether instance.close did.
func CloseFreesClosedModule(p *Plugin) (wazeroFreed, closeFreed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := p.instantiate(ctx)
	if err != nil {
		return false, false, err
	}
	spy := &freeSpy{LinearMemory: inst.linear}
	inst.linear = spy
	watcher, ok := inst.mod.(interface {
		CloseModuleOnCanceledOrTimeout(context.Context) context.CancelFunc
	})
	if !ok {
		inst.close()
		return false, false, errors.New("the module has no CloseModuleOnCanceledOrTimeout")
	}
	expired, expire := context.WithCancel(context.Background())
	expire()
	stop := watcher.CloseModuleOnCanceledOrTimeout(expired)
	deadline := time.Now().Add(10 * time.Second) // no event: poll
	for !inst.mod.IsClosed() && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	stop()
	if !inst.mod.IsClosed() {
		inst.close()
		return false, false, errors.New("the watcher did not close the module")
	}
	wazeroFreed = spy.freed
	if m, ok := spy.LinearMemory.(*mmapMemory); ok {
		wazeroFreed = m.mapped == nil
	}
	inst.close()
	return wazeroFreed, spy.freed, nil
}
