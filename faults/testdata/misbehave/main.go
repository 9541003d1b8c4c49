// Command misbehave is the test plugin of faults/plugins_test.go: a
// notifier whose config {} block chooses how it behaves on Notify. The same
// source builds as a go-plugin executable and as a WASM module:
//
//	CGO_ENABLED=0 go build -o misbehave ./testdata/misbehave
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o misbehave.wasm ./testdata/misbehave
//
// Config:
//
//	mode  "ok" (default): log "notified" with the X509-SVID's serial
//	      through the host and succeed;
//	      "crash": exit with status 3 in the middle of the call;
//	      "hang": sleep for an hour, ignoring the call's context;
//	      "oom": allocate 4 MiB blocks without bound (WASM build only).
//	only  misbehave only when the event's SPIFFE ID ends with this suffix,
//	      and behave as "ok" otherwise. Default: misbehave on every call.
//
// The "notified" line goes through the host's log import in the WASM
// build, and to standard error (re-emitted by the agent) in the go-plugin
// build: go-plugin's broker forgets the host services' connection info 5 s
// after the plugin started, so that a first host call later than that
// blocks and fails, and a plugin waits longer than that for its first
// rotation while the WASM modules compile.
package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

var info = sdk.Info{Name: "misbehave", Version: "0.1.0"}

type config struct {
	Mode string `json:"mode"`
	Only string `json:"only"`
}

func decode(configJSON []byte) (config, error) {
	var c config
	if len(configJSON) > 0 {
		if err := json.Unmarshal(configJSON, &c); err != nil {
			return c, err
		}
	}
	if c.Mode == "" {
		c.Mode = "ok"
	}
	return c, nil
}

type notifier struct {
	mu  sync.Mutex
	cfg config
}

func (n *notifier) Validate(configJSON []byte) hostapi.FieldErrors {
	var es hostapi.FieldErrors
	c, err := decode(configJSON)
	switch {
	case err != nil:
		es.Add("", "decoding config: "+err.Error())
	case c.Mode == "oom" && !wasmBuild:
		es.Add("mode", `"oom" is for the WASM build only: a subprocess has no memory limit`)
	case c.Mode != "ok" && c.Mode != "crash" && c.Mode != "hang" && c.Mode != "oom":
		es.Add("mode", "unknown mode "+c.Mode+`; want "ok", "crash", "hang" or "oom"`)
	}
	return es
}

func (n *notifier) Configure(_ context.Context, configJSON []byte) error {
	c, err := decode(configJSON)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.cfg = c
	n.mu.Unlock()
	return nil
}

// hog keeps the "oom" allocations reachable.
var hog [][]byte

func (n *notifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	n.mu.Lock()
	c := n.cfg
	n.mu.Unlock()
	var id, serial string
	if len(ev.X509) > 0 {
		id, serial = ev.X509[0].SPIFFEID, ev.X509[0].Serial
	}
	if c.Only == "" || strings.HasSuffix(id, c.Only) {
		switch c.Mode {
		case "crash":
			os.Exit(3)
		case "hang":
			time.Sleep(time.Hour)
		case "oom":
			for {
				hog = append(hog, make([]byte, 4<<20))
			}
		}
	}
	logNotified(ctx, "serial", serial, "spiffe_id", id)
	return nil
}
