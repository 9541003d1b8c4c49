//go:build wasip1

// Command strictwire is a notifier whose hand-written decoder refuses a
// known field under another wire type than its own, instead of skipping
// it. Broken on purpose: malformed_input must fail (ABI.md §4).
//
// Built by conformance's TestMain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o strictwire.wasm ./conformance/testdata/broken/strictwire
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/internal/fixture"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testdata/abi"
	"google.golang.org/protobuf/encoding/protowire"
)

func main() {}

//go:wasmexport svidagent_abi_v1
func marker() {}

var h = &fixture.Notifier{Describe: &pluginv1.DescribeResponse{Name: "strictwire", Version: "0.0.1",
	Services: []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"}},
	Notify: func(payload []byte) (uint32, string) {
		for len(payload) > 0 {
			num, typ, n := protowire.ConsumeField(payload)
			if n < 0 {
				return 3, "decoding NotifyRequest: " + protowire.ParseError(n).Error()
			}
			if num == 1 && typ != protowire.BytesType { // the bug: this must be skipped
				return 3, "decoding NotifyRequest: field 1 (name) is not length-delimited"
			}
			payload = payload[n:]
		}
		return 0, ""
	}}

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, h.Handle) }
