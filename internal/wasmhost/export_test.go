package wasmhost

// SharedRefs returns how many plugins hold the engine of cacheDir and the
// module with sha256 sum in it (0 when there is none), for tests.
func SharedRefs(cacheDir, sum string) (engineRefs, moduleRefs int) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	e := engines[cacheDir]
	if e == nil {
		return 0, 0
	}
	if m := e.modules[sum]; m != nil {
		moduleRefs = m.refs
	}
	return e.refs, moduleRefs
}
