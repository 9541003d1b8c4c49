package wasmrt

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapMemory is linear memory in an anonymous private mapping of the
// maximum size, reserved without swap (MAP_NORESERVE): the kernel backs a
// page with memory when the guest first touches it, and the mapping never
// moves, so growing it copies nothing. It is unmapped when wazero frees the
// instance's memory, after the instance is closed.
type mmapMemory struct {
	mapped []byte // the whole mapping, as syscall.Munmap wants it
	size   uint64
}

// mapMemory returns an mmapMemory of max bytes, or nil if the mapping
// fails (the caller then uses the Go heap).
func mapMemory(max uint64) experimental.LinearMemory {
	if max == 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mmapMemory{mapped: b}
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.mapped)) {
		return nil
	}
	m.size = size
	return m.mapped[:size:size]
}

func (m *mmapMemory) Free() {
	if m.mapped != nil {
		_ = syscall.Munmap(m.mapped)
		m.mapped = nil
	}
}
