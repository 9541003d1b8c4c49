//go:build wasip1

// Command command is a WASI command, not a reactor: built without
// -buildmode=c-shared it exports _start, which the host refuses.
//
//	GOOS=wasip1 GOARCH=wasm go build -o command.wasm ./testdata/guests/command
package main

import "github.com/svidagent/svidagent/internal/testdata/abi"

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 {
	return abi.Call(ptr, n, func(string, []byte) (uint32, string, []byte) { return 0, "", nil })
}
