package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goPluginModules are the modules only the go-plugin runtime brings in.
var goPluginModules = []string{"github.com/hashicorp/go-plugin", "github.com/hashicorp/go-hclog", "github.com/hashicorp/yamux"}

// TestNoGoPluginBuild checks the svidagent_nogoplugin build (docs/EDGE.md):
// it links none of go-plugin, and a command plugin fails with an error
// that says why and what to do instead.
func TestNoGoPluginBuild(t *testing.T) {
	t.Run("dependencies", func(t *testing.T) {
		for _, tc := range []struct {
			tags string
			want bool
		}{{"", true}, {"svidagent_nogoplugin", false}} {
			out, err := exec.Command("go", "list", "-deps", "-tags", tc.tags, ".").CombinedOutput()
			if err != nil {
				t.Fatalf("go list -tags %q: %v\n%s", tc.tags, err, out)
			}
			for _, m := range goPluginModules {
				if got := strings.Contains(string(out), m+"\n"); got != tc.want {
					t.Errorf("tags %q: %s linked: %v, want %v", tc.tags, m, got, tc.want)
				}
			}
		}
	})
	t.Run("command plugin refused", func(t *testing.T) {
		dir := t.TempDir()
		bin := filepath.Join(dir, "svidagent-nogoplugin")
		build := exec.Command("go", "build", "-tags", "svidagent_nogoplugin", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building: %v\n%s", err, out)
		}
		writeFile(t, filepath.Join(dir, "agent.hcl"), `
state_dir = "state"

plugin "cmd" {
  command                = "/bin/true"
  insecure_skip_checksum = true
}

issuer "dev" {
  trust_domain = "example.org"
}

svid "app" {
  spiffe_id = "spiffe://example.org/app"
  writer "files" {
    dir = "out"
  }
  notifier "cmd" {}
}
`)
		const want = "this svidagent was built without the go-plugin runtime (tag svidagent_nogoplugin); use a wasm plugin or a full build"
		for _, sub := range []string{"validate", "run"} {
			cmd := exec.Command(bin, sub, "-config", "agent.hcl")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), want) {
				t.Errorf("svidagent %s = %v, want a failure saying %q; output:\n%s", sub, err, want, out)
			}
		}
		for _, args := range [][]string{{"plugin", "inspect", "/bin/true"}, {"conformance", "-kind", "notifier", "-plugin", "/bin/true"}} {
			cmd := exec.Command(bin, args...)
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), want) {
				t.Errorf("svidagent %s = %v, want %q; output:\n%s", strings.Join(args, " "), err, want, out)
			}
		}
	})
}
