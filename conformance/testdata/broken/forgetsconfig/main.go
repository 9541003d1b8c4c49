//go:build wasip1

// Command forgetsconfig is a notifier that drops its config when a
// re-Configure fails, and then answers Notify with FAILED_PRECONDITION.
// Broken on purpose: failed_configure_keeps_config must fail (ABI.md §6:
// a failed Configure leaves the previous config in effect).
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o forgetsconfig.wasm ./conformance/testdata/broken/forgetsconfig
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "forgetsconfig", Version: "0.0.1",
	Services: []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"}},
	ForgetOnFailure: true}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, h.Handle) }
