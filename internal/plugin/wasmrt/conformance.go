package wasmrt

import "fmt"

// This file holds accessors for the conformance suite (conformance/): they
// expose what the host already knows, for checks from outside the package.

// CheckFile reads the module at path and checks the names of its exports
// against hostapi/ABI.md §2 statically, from the export section, before
// anything is compiled or instantiated. It returns the exported function
// names it found (nil when the bytes cannot be parsed; the compiler then
// says why, and CheckFile returns no error).
func CheckFile(path string) (exports []string, err error) {
	code, _, err := readModule(path)
	if err != nil {
		return nil, fmt.Errorf("checking plugin %s: %w", path, err)
	}
	funcs, mems, ok := rawExports(code)
	if !ok {
		return nil, nil
	}
	for name := range funcs {
		exports = append(exports, name)
	}
	if err := checkNames(funcs, mems); err != nil {
		return exports, fmt.Errorf("checking plugin %s: %w", path, err)
	}
	return exports, nil
}

// MemoryBytes returns the size of the live instance's linear memory, and
// false when there is no live instance (none was created yet, or the last
// one was discarded). Linear memory only grows, so it is the high-water
// mark of the instance's heap.
func (p *Plugin) MemoryBytes() (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inst == nil {
		return 0, false
	}
	return p.inst.mem.Size(), true
}
