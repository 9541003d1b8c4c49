//go:build !linux

package wasmrt

import "github.com/tetratelabs/wazero/experimental"

// mapMemory returns nil: outside Linux, linear memory lives on the Go heap.
func mapMemory(max uint64) experimental.LinearMemory { return nil }
