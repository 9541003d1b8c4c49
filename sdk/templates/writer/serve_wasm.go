//go:build wasip1

package main

import "github.com/svidagent/svidagent/sdk/wasm"

// defaultDir is where a WASM writer writes: the host preopens the plugin
// block's allow { write_dir } as /out, and nothing else is reachable.
const defaultDir = "/out"

// With -buildmode=c-shared, init runs in _initialize; main never runs.
func init() { wasm.ServeWriter(info, &writer{}) }

func main() {}
