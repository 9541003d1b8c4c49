//go:build wasip1

// Command unconfigured is a notifier that answers Notify with OK before
// Configure. Broken on purpose: call_before_configure must fail (ABI.md §6
// requires FAILED_PRECONDITION).
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o unconfigured.wasm ./conformance/testdata/broken/unconfigured
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "unconfigured", Version: "0.0.1",
	Services: []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"}},
	SkipPrecondition: true}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, h.Handle) }
