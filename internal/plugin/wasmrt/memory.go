package wasmrt

import "github.com/tetratelabs/wazero/experimental"

// limitedMemory is the memory allocator of one plugin's instances
// (wazero's experimental.MemoryAllocator): it enforces the plugin's memory
// limit, which the shared runtime cannot (its limit is the host ceiling),
// and keeps guest memory out of the host's Go heap where it can
// (mapMemory): a linear memory that only grows, reserved once up to the
// limit, whose untouched pages cost no RSS and whose touched ones are not
// counted towards the Go collector's heap goal, so that the host heap does
// not grow by twice each guest's memory. memory.grow past the limit fails
// (the guest sees -1, a Go guest dies with "out of memory").
//
// One is used per instantiation, and records the memory it hands out, so
// that instance.close can free it itself: wazero leaves a module's
// resources unfreed when a call's deadline closes the module just after
// the guest returned, for a later call to release, and a later Close of
// the module then frees nothing. Memory on the Go heap would be collected;
// a mapping would stay for the life of the process.
type limitedMemory struct {
	limit uint64 // bytes
	mem   experimental.LinearMemory
}

// Allocate implements experimental.MemoryAllocator.
func (a *limitedMemory) Allocate(capacity, max uint64) experimental.LinearMemory {
	max = min(max, a.limit)
	m := mapMemory(max)
	if m == nil {
		m = &heapMemory{max: max}
	}
	a.mem = m
	return m
}

// heapMemory is linear memory on the Go heap, grown like wazero's own
// (append), for where mapMemory is not available.
type heapMemory struct {
	buf []byte
	max uint64
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
	} else {
		m.buf = append(m.buf, make([]byte, size-uint64(len(m.buf)))...)
	}
	return m.buf
}

func (m *heapMemory) Free() { m.buf = nil }

var _ experimental.MemoryAllocator = (*limitedMemory)(nil)
