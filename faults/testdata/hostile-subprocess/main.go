// Command hostile-subprocess is the go-plugin notifier of
// faults/hostile_subprocess_test.go. How it misbehaves at start is fixed
// when it is built, how it misbehaves once configured by its config {}
// block:
//
//	CGO_ENABLED=0 go build -ldflags "-X main.start=MODE" -o hostile ./testdata/hostile-subprocess
//
// start (build time):
//
//	""        serve normally (default);
//	"exit"    exit with status 3 before the go-plugin handshake;
//	"hang"    sleep for an hour before the handshake;
//	"garbage" print lines that are not a handshake on stdout, then sleep;
//	"crash"   complete the handshake, then exit with status 3 in Validate;
//	"wait:F"  wait until the file F exists, then serve normally (a plugin
//	          whose start is slow, for as long as the test wants).
//
// config:
//
//	mode   "ok" (default): log "notified" on each Notify, with the first
//	       X509-SVID's serial;
//	       "spawn": at Configure, start `sh -c 'trap "" TERM; exec sleep
//	       1000'` in a new session (setsid), with
//	       SVIDAGENT_TEST_MARKER=<marker> in its environment, and log
//	       "spawned";
//	       "flood": at Configure, start writing 1 MiB lines full of control
//	       bytes (ESC) to stderr, without end;
//	       "hog": at each Notify, allocate and touch 4 MiB blocks, up to
//	       8 GiB, and fail if nothing stopped it.
//	marker the spawned process's marker.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/goplugin"
)

// start is set with -ldflags "-X main.start=...".
var start string

type config struct {
	Mode   string `json:"mode"`
	Marker string `json:"marker"`
}

type notifier struct{}

// mode is the configured mode.
var mode string

func (notifier) Validate(configJSON []byte) hostapi.FieldErrors {
	if start == "crash" {
		os.Exit(3)
	}
	var es hostapi.FieldErrors
	var c config
	if err := json.Unmarshal(configJSON, &c); err != nil {
		es.Add("", "decoding config: "+err.Error())
	}
	return es
}

func (notifier) Configure(_ context.Context, configJSON []byte) error {
	var c config
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return err
	}
	mode = c.Mode
	switch c.Mode {
	case "spawn":
		cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; exec sleep 1000`)
		cmd.Env = []string{"SVIDAGENT_TEST_MARKER=" + c.Marker, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		go cmd.Wait()
		goplugin.Logger().Info("spawned", "marker", c.Marker)
	case "flood":
		line := bytes.Repeat([]byte("\x1b[31mFLOOD\x07"), (1<<20)/11)
		line = append(line, '\n')
		go func() {
			for {
				if _, err := os.Stderr.Write(line); err != nil {
					return
				}
			}
		}()
	}
	return nil
}

// hog keeps the "hog" mode's allocations reachable.
var hog [][]byte

func (notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	if mode == "hog" {
		// 4 MiB blocks, each touched, up to 8 GiB: only a memory limit
		// stops it before that.
		for range 2048 {
			b := make([]byte, 4<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hog = append(hog, b)
		}
		return errors.New("allocated 8 GiB unhindered")
	}
	var serial string
	if len(ev.X509) > 0 {
		serial = ev.X509[0].Serial
	}
	goplugin.Logger().Info("notified", "name", ev.Name, "serial", serial)
	return nil
}

func main() {
	switch start {
	case "exit":
		os.Exit(3)
	case "hang":
		time.Sleep(time.Hour)
	case "garbage":
		for range 3 {
			fmt.Println("hello from a plugin that does not speak go-plugin")
		}
		time.Sleep(time.Hour)
	default:
		if f, ok := strings.CutPrefix(start, "wait:"); ok {
			for {
				if _, err := os.Stat(f); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	goplugin.Serve(sdk.Info{Name: "hostile-subprocess", Version: "0.1.0"}, notifier{})
}
