//go:build wasip1

// Command nocall has the marker and the allocator but no svidagent_call.
package main

import _ "github.com/svidagent/svidagent/internal/testdata/abi"

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}
