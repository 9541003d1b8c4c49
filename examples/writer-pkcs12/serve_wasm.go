//go:build wasip1

package main

import "github.com/svidagent/svidagent/sdk/wasm"

// With -buildmode=c-shared, init runs in _initialize; main never runs.
func init() { wasm.ServeWriter(info, newWriter()) }

func main() {}

// inWASM: the only filesystem is the output directory, preopened as /out,
// so dir defaults to it and password_file cannot be read.
const inWASM = true
