// Command host opens a go-plugin plugin with internal/gopluginhost, prints
// "pid <n>" (the plugin's) and waits to be killed: the test of a SIGKILLed
// agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/gopluginhost"
)

func main() {
	path := flag.String("plugin", "", "plugin executable")
	sum := flag.String("sha256", "", "its sha256")
	state := flag.String("state", "", "state directory")
	flag.Parse()
	p, err := gopluginhost.Open(context.Background(), gopluginhost.Config{
		Path: *path, SHA256: *sum, StateDir: *state, Name: "killed-host", Kind: hostapi.KindNotifier,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("pid %d\n", p.Pid())
	select {}
}
