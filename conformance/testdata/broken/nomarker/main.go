//go:build wasip1

// Command nomarker is a notifier that exports everything but the ABI
// marker svidagent_abi_v1. Broken on purpose: abi_exports must fail.
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o nomarker.wasm ./conformance/testdata/broken/nomarker
package main

import "github.com/svidagent/svidagent/internal/testdata/abi"

func main() {}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 {
	return abi.Call(ptr, n, func(string, []byte) (uint32, string, []byte) { return 0, "", nil })
}
