//go:build !wasip1

package main

import "github.com/svidagent/svidagent/sdk/goplugin"

// defaultDir is empty for a go-plugin subprocess: it sees the host's file
// system, so the config must say where to write.
const defaultDir = ""

// exampleConfig is none: only the host knows the directory a subprocess
// may write to, so conformance needs -config with {"dir": ...}.
var exampleConfig []byte

func main() { goplugin.Serve(info, &writer{}) }
