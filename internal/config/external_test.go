package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
)

// TestExternalFieldDiagnostics maps a plugin's own Validate problems to
// the attributes of its config {} block.
func TestExternalFieldDiagnostics(t *testing.T) {
	cfg, err := config.Load("testdata/plugins.hcl")
	if err != nil {
		t.Fatal(config.FormatError(err, nil))
	}
	hook := cfg.Plugins[0]
	if hook.Name != "webhook" {
		t.Fatalf("first plugin %q", hook.Name)
	}
	if cfg.SVIDs[0].Notifiers[0].External != hook || cfg.SVIDs[1].Notifiers[0].External != hook {
		t.Error("the two references to plugin webhook do not share one *External")
	}
	var fes hostapi.FieldErrors
	fes.Add("url", "unreachable")
	fes.Add("headers.authorization", "malformed")
	fes.Add("timeout_ms", "required")
	fes.Add("", "the whole config is wrong")
	got := config.FormatError(fes.Err(), nil) // not diagnostics: plain
	if !strings.Contains(got, "url: unreachable") {
		t.Errorf("FormatError(FieldErrors) = %q", got)
	}
	out := config.FormatError(hook.FieldDiagnostics(fes), nil)
	for _, want := range []string{
		"testdata/plugins.hcl:6:3: error: Invalid webhook plugin setting\n    the whole config is wrong",
		"testdata/plugins.hcl:6:3: error: Invalid webhook plugin setting timeout_ms\n    timeout_ms: required",
		"testdata/plugins.hcl:7:5: error: Invalid webhook plugin setting url\n    unreachable",
		"testdata/plugins.hcl:11:7: error: Invalid webhook plugin setting headers.authorization\n    malformed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}

func TestDefaultStateDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Setenv("STATE_DIRECTORY", "")
		if got := config.DefaultStateDir(); got != "/var/lib/svidagent" {
			t.Errorf("as root: %q", got)
		}
	} else {
		t.Setenv("STATE_DIRECTORY", "")
		t.Setenv("XDG_STATE_HOME", "/xdg")
		if got := config.DefaultStateDir(); got != filepath.Join("/xdg", "svidagent") {
			t.Errorf("with XDG_STATE_HOME: %q", got)
		}
	}
	t.Setenv("STATE_DIRECTORY", "/var/lib/a:/var/lib/b")
	if got := config.DefaultStateDir(); got != "/var/lib/a" {
		t.Errorf("with STATE_DIRECTORY: %q", got)
	}
	cfg := &config.Config{StateDir: "/x"}
	if got := cfg.StateDirectory(); got != "/x" {
		t.Errorf("StateDirectory = %q", got)
	}
}

// TestExamplePluginsConfig loads the sample config of the README's Plugins
// section.
func TestExamplePluginsConfig(t *testing.T) {
	cfg, err := config.Load("../../examples/agent-plugins.hcl")
	if err != nil {
		t.Fatal(config.FormatError(err, nil))
	}
	if len(cfg.Plugins) != 2 || cfg.Plugins[0].Runtime != config.RuntimeWASM || cfg.Plugins[1].Runtime != config.RuntimeCommand {
		t.Fatalf("plugins %+v", cfg.Plugins)
	}
	for _, p := range cfg.Plugins {
		if p.Kind != hostapi.KindNotifier || !strings.HasPrefix(p.Path, filepath.Join("..", "..", "examples", "plugins")) {
			t.Errorf("plugin %s: kind %q path %q", p.Name, p.Kind, p.Path)
		}
	}
}
