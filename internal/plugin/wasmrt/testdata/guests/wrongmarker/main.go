//go:build wasip1

// Command wrongmarker speaks a future ABI: it exports svidagent_abi_v2 only.
package main

import "github.com/svidagent/svidagent/internal/testdata/abi"

func main() {}

//go:wasmexport svidagent_abi_v2
func marker() {}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 {
	return abi.Call(ptr, n, func(string, []byte) (uint32, string, []byte) { return 0, "", nil })
}
