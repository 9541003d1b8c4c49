// Command notifier is the test plugin of internal/plugin/subproc: a notifier
// served with sdk/goplugin whose behaviour is chosen by the event's name.
//
//	crash  exits with status 3 in the middle of the call
//	hang   blocks forever
//	echo   fails with the configured greeting and its pid
//	http   GETs ev.Paths[0] through the host; succeeds on 200 "pong"
//	dump   fails with the event it received, as JSON
//	log    logs through the host and to stderr
//	hog    allocates and touches 4 MiB blocks, up to 1 GiB, then fails
//	       (a memory limit should kill it first)
//	spawn  starts `sh -c 'trap "" TERM; sleep 1000'` in a new session,
//	       with SVIDAGENT_TEST_MARKER=ev.Paths[0] in its environment
//	env    fails with the names of its environment variables, space-separated
//	other  succeeds
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/goplugin"
)

// hog keeps the "hog" allocations reachable.
var hog [][]byte

type notifier struct {
	mu       sync.Mutex
	greeting string
}

func (n *notifier) Validate(configJSON []byte) hostapi.FieldErrors {
	var c struct {
		Greeting string `json:"greeting"`
	}
	var es hostapi.FieldErrors
	if err := json.Unmarshal(configJSON, &c); err != nil {
		es.Add("", "decoding config: "+err.Error())
	}
	return es
}

func (n *notifier) Configure(_ context.Context, configJSON []byte) error {
	var c struct {
		Greeting string `json:"greeting"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return err
	}
	n.mu.Lock()
	n.greeting = c.Greeting
	n.mu.Unlock()
	return nil
}

func (n *notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	switch ev.Name {
	case "crash":
		os.Exit(3)
	case "hang":
		select {}
	case "echo":
		n.mu.Lock()
		defer n.mu.Unlock()
		return sdk.Errorf(sdk.CodeFailedPrecondition, "greeting=%s pid=%d", n.greeting, hostPid())
	case "http":
		resp, err := sdk.HostFromContext(ctx).HTTP(ctx, &sdk.HTTPRequest{URL: ev.Paths[0]})
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || string(resp.Body) != "pong" {
			return fmt.Errorf("unexpected answer %d %q", resp.StatusCode, resp.Body)
		}
	case "dump":
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		return sdk.Error(sdk.CodeFailedPrecondition, string(b))
	case "hog":
		for range 256 {
			b := make([]byte, 4<<20)
			for i := range b {
				b[i] = 1
			}
			hog = append(hog, b)
		}
		return sdk.Error(sdk.CodeFailedPrecondition, "allocated 1 GiB: no memory limit")
	case "spawn":
		cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; sleep 1000`)
		cmd.Env = append(os.Environ(), "SVIDAGENT_TEST_MARKER="+ev.Paths[0])
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		go cmd.Wait()
	case "env":
		var names []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			names = append(names, k)
		}
		return sdk.Error(sdk.CodeFailedPrecondition, strings.Join(names, " "))
	case "log":
		sdk.HostFromContext(ctx).Log(slog.LevelWarn, "through the host", "via", "broker")
		goplugin.Logger().Error("through stderr", "via", "hclog-json")
	}
	return nil
}

// hostPid returns the plugin's pid as the agent sees it: os.Getpid is 1
// in the plugin's own pid namespace, while /proc is the agent's.
func hostPid() int {
	s, err := os.Readlink("/proc/self")
	if err != nil {
		return -1
	}
	pid, _ := strconv.Atoi(s)
	return pid
}

func main() {
	goplugin.Serve(sdk.Info{Name: "test-notifier", Version: "0.1.0"}, &notifier{})
}
