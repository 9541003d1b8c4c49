//go:build wasip1

package main

import "github.com/svidagent/svidagent/sdk/wasm"

// defaultDir is where a WASM writer writes: the host preopens the plugin
// block's allow { write_dir } as /out, and nothing else is reachable.
const defaultDir = "/out"

// exampleConfig writes to /out, whatever directory the host maps there.
var exampleConfig = []byte(`{"dir":"/out"}`)

// With -buildmode=c-shared, init runs in _initialize; main never runs.
func init() { wasm.ServeWriter(info, &writer{}) }

func main() {}
