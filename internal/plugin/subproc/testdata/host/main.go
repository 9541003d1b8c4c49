// Command host opens a go-plugin plugin with internal/plugin/subproc, prints
// "pid <n>" (the plugin's) and waits to be killed: the test of a SIGKILLed
// agent. With -spawn, it first has the plugin start a grandchild in a new
// session, marked with the flag's value (see the test plugin's "spawn").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/subproc"
	"google.golang.org/protobuf/proto"
)

func main() {
	path := flag.String("plugin", "", "plugin executable")
	sum := flag.String("sha256", "", "its sha256")
	state := flag.String("state", "", "state directory")
	spawn := flag.String("spawn", "", "marker of a grandchild the plugin starts")
	flag.Parse()
	p, err := subproc.Open(context.Background(), subproc.Config{
		Path: *path, SHA256: *sum, StateDir: *state, Name: "killed-host", Kind: hostapi.KindNotifier,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *spawn != "" {
		ctx := context.Background()
		for _, c := range []struct {
			method    string
			req, resp proto.Message
		}{
			{adapter.MethodDescribe, &pluginv1.DescribeRequest{}, &pluginv1.DescribeResponse{}},
			{adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte("{}")}, &pluginv1.ConfigureResponse{}},
			{adapter.MethodNotify, &notifierv1.NotifyRequest{Name: "spawn", Paths: []string{*spawn}}, &notifierv1.NotifyResponse{}},
		} {
			if err := p.Invoke(ctx, c.method, c.req, c.resp); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", c.method, err)
				os.Exit(1)
			}
		}
	}
	fmt.Printf("pid %d\n", p.Pid())
	select {}
}
