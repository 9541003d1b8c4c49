//go:build wasip1

// Command noservices is a notifier whose Describe lists no services.
// Broken on purpose: negotiation must fail.
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o noservices.wasm ./conformance/testdata/broken/noservices
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "noservices", Version: "0.0.1"}}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, h.Handle) }
