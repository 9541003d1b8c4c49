//go:build wasip1

// Command leak is a notifier that keeps 1 KiB per Notify forever. Broken
// on purpose: memory_flat must fail.
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o leak.wasm ./conformance/testdata/broken/leak
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
	"google.golang.org/protobuf/proto"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

// kept is the leak.
var kept [][]byte

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "leak", Version: "0.0.1",
	Services: []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"}},
	Notify: func(payload []byte) (uint32, string) {
		if err := proto.Unmarshal(payload, &notifierv1.NotifyRequest{}); err != nil {
			return 3, "decoding NotifyRequest: " + err.Error()
		}
		kept = append(kept, make([]byte, 1024))
		return 0, ""
	}}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, h.Handle) }
