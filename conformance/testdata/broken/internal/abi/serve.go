//go:build wasip1

package abi

import (
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"google.golang.org/protobuf/proto"
)

// Notifier answers the calls of a well-behaved notifier that takes no
// config; a fixture overrides the one thing it gets wrong.
func Notifier(describe *pluginv1.DescribeResponse, notify func(payload []byte) (uint32, string)) Handler {
	return func(method string, payload []byte) (uint32, string, []byte) {
		var out proto.Message
		switch method {
		case "svidagent.plugin.v1.Plugin/Describe":
			out = describe
		case "svidagent.plugin.v1.Plugin/Validate":
			var req pluginv1.ValidateRequest
			if err := proto.Unmarshal(payload, &req); err != nil {
				return 3, "decoding ValidateRequest: " + err.Error(), nil
			}
			resp := &pluginv1.ValidateResponse{}
			if s := string(req.GetConfigJson()); s != "{}" && s != "" {
				resp.Problems = []*pluginv1.FieldError{{Message: "this plugin takes no configuration"}}
			}
			out = resp
		case "svidagent.plugin.v1.Plugin/Configure":
			var req pluginv1.ConfigureRequest
			if err := proto.Unmarshal(payload, &req); err != nil {
				return 3, "decoding ConfigureRequest: " + err.Error(), nil
			}
			if s := string(req.GetConfigJson()); s != "{}" && s != "" {
				return 3, "this plugin takes no configuration", nil
			}
			out = &pluginv1.ConfigureResponse{}
		case "svidagent.plugin.v1.Plugin/Close":
			out = &pluginv1.CloseResponse{}
		case "svidagent.plugin.notifier.v1.Notifier/Notify":
			code, msg := notify(payload)
			return code, msg, nil
		default:
			return 12, "unknown method " + method, nil
		}
		b, err := proto.Marshal(out)
		if err != nil {
			return 13, err.Error(), nil
		}
		return 0, "", b
	}
}
