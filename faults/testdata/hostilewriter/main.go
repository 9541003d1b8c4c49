// Command hostilewriter is the hostile WASM writer of
// faults/hostile_guest_test.go. On every Write it tries to leave its grant
// (its /out), records what happened to each attempt in /out/report.json,
// and reports the paths it wrote. Built with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hostilewriter.wasm ./testdata/hostilewriter
//
// Config (JSON, from the plugin block's config {}):
//
//	secret    a host file outside the grant, to read through every trick
//	plant     a host directory outside the grant, to write into
//	key       the agent's own key file (the files writer's output)
//	state     the agent's state directory
//	bad_path  if true, report /etc/passwd among the written paths
package main

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"strings"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/wasm"
)

var info = sdk.Info{Name: "hostilewriter", Version: "0.1.0"}

type config struct {
	Secret  string `json:"secret"`
	Plant   string `json:"plant"`
	Key     string `json:"key"`
	State   string `json:"state"`
	BadPath bool   `json:"bad_path"`
}

type writer struct{ cfg config }

func (w *writer) Validate([]byte) hostapi.FieldErrors { return nil }

func (w *writer) Configure(_ context.Context, b []byte) error {
	w.cfg = config{}
	return json.Unmarshal(b, &w.cfg)
}

// attempt records "escaped" when err is nil (the trick worked) and the
// error otherwise.
func attempt(report map[string]string, name string, err error) {
	if err == nil {
		report[name] = "escaped"
		return
	}
	report[name] = "denied: " + err.Error()
}

func read(p string) error {
	_, err := os.ReadFile(p)
	return err
}

func write(p string) error { return os.WriteFile(p, []byte("planted"), 0o644) }

func (w *writer) Write(_ context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	c := w.cfg
	r := map[string]string{}
	up := strings.Repeat("../", 16)
	// Links it makes: to the root, to the secret, to a sibling.
	_ = os.Remove("/out/rootlink")
	attempt(r, "symlink_root", os.Symlink(up, "/out/rootlink"))
	attempt(r, "read_via_rootlink", read("/out/rootlink"+c.Secret))
	attempt(r, "write_via_rootlink", write("/out/rootlink"+path.Join(c.Plant, "via-rootlink")))
	attempt(r, "symlink_secret", os.Symlink(c.Secret, "/out/secretlink"))
	attempt(r, "read_via_secretlink", read("/out/secretlink"))
	attempt(r, "hardlink_secret", os.Link(c.Secret, "/out/hard"))
	// Names that leave: "..", absolute paths.
	attempt(r, "read_dotdot", read("/out/"+up+c.Secret))
	attempt(r, "write_dotdot", write("/out/"+up+path.Join(c.Plant, "via-dotdot")))
	attempt(r, "read_absolute", read(c.Secret))
	attempt(r, "read_agent_key", read(c.Key))
	attempt(r, "list_state_dir", func() error { _, err := os.ReadDir(c.State); return err }())
	attempt(r, "rename_out", os.Rename("/out/report.json", path.Join(c.Plant, "stolen")))
	// The host's environment: nothing but what was granted.
	if env := os.Environ(); len(env) > 1 || len(env) == 1 && !strings.HasPrefix(env[0], "GOMEMLIMIT=") {
		r["environ"] = "escaped: " + strings.Join(env, " ")
	} else {
		r["environ"] = "denied: " + strings.Join(env, " ")
	}
	b, _ := json.Marshal(r)
	if err := os.WriteFile("/out/report.json", b, 0o600); err != nil {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "writing the report: %v", err)
	}
	paths := []string{"/out/report.json"}
	if c.BadPath {
		paths = append(paths, "/etc/passwd")
	}
	return &hostapi.WriteResult{Paths: paths}, nil
}

func init() { wasm.ServeWriter(info, &writer{}) }

func main() {}
