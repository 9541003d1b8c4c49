//go:build wasip1

// Command keepsrequests is a notifier that never frees the request
// buffers the host allocates with svidagent_alloc (ABI.md §3: the guest
// owns them once svidagent_call runs). Broken on purpose: memory_flat must
// fail.
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o keepsrequests.wasm ./conformance/testdata/broken/keepsrequests
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "keepsrequests", Version: "0.0.1",
	Services: []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"}}}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.CallKeepingRequest(ptr, n, h.Handle) }
