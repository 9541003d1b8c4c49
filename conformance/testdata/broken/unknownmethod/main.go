//go:build wasip1

// Command unknownmethod is a notifier that answers an unknown method with
// INVALID_ARGUMENT. Broken on purpose: unknown_method must fail (ABI.md §4
// requires UNIMPLEMENTED).
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o unknownmethod.wasm ./conformance/testdata/broken/unknownmethod
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "unknownmethod", Version: "0.0.1",
	Services: []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"}},
	UnknownMethod: 3}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, h.Handle) }
