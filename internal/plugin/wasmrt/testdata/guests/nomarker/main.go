//go:build wasip1

// Command nomarker exports everything but the ABI marker svidagent_abi_v1.
package main

import "github.com/svidagent/svidagent/internal/testdata/abi"

func main() {}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 {
	return abi.Call(ptr, n, func(string, []byte) (uint32, string, []byte) { return 0, "", nil })
}
