//go:build wasip1

package abi

import (
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"google.golang.org/protobuf/proto"
)

// Notifier is a well-behaved notifier that takes no config; a fixture
// sets the one thing it gets wrong.
type Notifier struct {
	Describe *pluginv1.DescribeResponse
	// Notify answers Notify once configured. Default: OK for a payload
	// that decodes, INVALID_ARGUMENT otherwise.
	Notify func(payload []byte) (uint32, string)
	// SkipPrecondition answers Notify before Configure as if configured,
	// instead of FAILED_PRECONDITION.
	SkipPrecondition bool
	// UnknownMethod is the code an unknown method gets. Default: 12
	// (UNIMPLEMENTED).
	UnknownMethod uint32
	// ForgetOnFailure drops the previous config when a Configure fails,
	// instead of keeping it in effect.
	ForgetOnFailure bool

	configured bool
}

// Handle answers one call; Call(ptr, n, n.Handle) serves it.
func (n *Notifier) Handle(method string, payload []byte) (uint32, string, []byte) {
	var out proto.Message
	switch method {
	case "svidagent.plugin.v1.Plugin/Describe":
		out = n.Describe
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
			if n.ForgetOnFailure {
				n.configured = false
			}
			return 3, "this plugin takes no configuration", nil
		}
		n.configured = true
		out = &pluginv1.ConfigureResponse{}
	case "svidagent.plugin.v1.Plugin/Close":
		n.configured = false
		out = &pluginv1.CloseResponse{}
	case "svidagent.plugin.notifier.v1.Notifier/Notify":
		if !n.configured && !n.SkipPrecondition {
			return 9, "calling Notify: not configured; Configure must succeed first", nil
		}
		if n.Notify != nil {
			code, msg := n.Notify(payload)
			return code, msg, nil
		}
		if err := proto.Unmarshal(payload, &notifierv1.NotifyRequest{}); err != nil {
			return 3, "decoding NotifyRequest: " + err.Error(), nil
		}
		return 0, "", nil
	default:
		code := n.UnknownMethod
		if code == 0 {
			code = 12
		}
		return code, "unknown method " + method, nil
	}
	b, err := proto.Marshal(out)
	if err != nil {
		return 13, err.Error(), nil
	}
	return 0, "", b
}
