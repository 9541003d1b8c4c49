package inproc_test

import (
	"context"
	"fmt"

	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/inproc"
	"google.golang.org/protobuf/proto"
)

type printer struct{}

func (printer) Notify(_ context.Context, ev *hostapi.RotationEvent) error {
	fmt.Println("rotated", ev.Name)
	return nil
}

func ExampleNew() {
	p, err := inproc.New(sdk.Info{Name: "printer", Version: "1.0.0"}, printer{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	req, _ := proto.Marshal(&pluginv1.DescribeRequest{})
	code, msg, resp := p.Handle(context.Background(), abi.Plugin_Describe_FullMethodName, req)
	var desc pluginv1.DescribeResponse
	_ = proto.Unmarshal(resp, &desc)
	fmt.Println(p.Kind(), code, msg, desc.GetName(), desc.GetServices())

	// The kind's method answers FAILED_PRECONDITION until Configure succeeded.
	code, _, _ = p.Handle(context.Background(), abi.Notifier_Notify_FullMethodName, nil)
	fmt.Println(code)
	// Output:
	// notifier 0  printer [svidagent.plugin.v1.Plugin svidagent.plugin.notifier.v1.Notifier]
	// 9
}
