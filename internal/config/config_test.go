package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/plugins/dev"
	"github.com/svidagent/svidagent/plugins/exec"
	"github.com/svidagent/svidagent/plugins/files"
	"github.com/svidagent/svidagent/plugins/signal"
	"github.com/svidagent/svidagent/plugins/workloadapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The built-in plugins register themselves in init(). While one of them is
// still being written (and does not register yet), a stand-in with the
// same config struct is registered so that the loader can be tested; the
// real registration, when present, always wins because imported packages'
// init functions run first.
func init() {
	for _, m := range []registry.Module{
		{ID: "issuer.dev", NewConfig: func() any { return dev.DefaultConfig() }},
		{ID: "issuer.workloadapi", NewConfig: func() any { return workloadapi.DefaultConfig() }},
		{ID: "writer.files", NewConfig: func() any { return files.DefaultConfig() }},
		{ID: "notifier.exec", NewConfig: func() any { return exec.DefaultConfig() }},
		{ID: "notifier.signal", NewConfig: func() any { return signal.DefaultConfig() }},
	} {
		kind, name, _ := strings.Cut(m.ID, ".")
		if _, ok := registry.Lookup(hostapi.Kind(kind), name); ok {
			continue
		}
		m.New = func(any, registry.Env) (any, error) { return nil, errors.New("stand-in module") }
		registry.Register(m)
	}
	// writer.testcheck exercises the mapping of a plugin's FieldErrors to
	// the attributes of its block.
	registry.Register(registry.Module{
		ID:        "writer.testcheck",
		NewConfig: func() any { return &checkConfig{Level: 1} },
		New:       func(any, registry.Env) (any, error) { return nil, errors.New("test module") },
	})
}

type checkConfig struct {
	Level int    `hcl:"level,optional" json:"level"`
	Path  string `hcl:"path,optional" json:"path"`
}

func (c *checkConfig) Validate() error {
	var es hostapi.FieldErrors
	if c.Level > 3 {
		es.Add("level", fmt.Sprintf("level %d is over 3; use 1, 2 or 3", c.Level))
	}
	if c.Path == "" {
		es.Add("path", "path is required; set it to the output directory")
	}
	if c.Path == "opaque" {
		return errors.New("opaque failure")
	}
	return es.Err()
}

// TestGolden loads every testdata/*.hcl and *.conf and compares the
// resulting Config, as JSON, with its .golden.json.
func TestGolden(t *testing.T) {
	for _, path := range inputs(t, "testdata") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(src, filepath.ToSlash(path))
			if err != nil {
				t.Fatalf("Parse: unexpected error:\n%s", config.FormatError(err, nil))
			}
			got, err := json.MarshalIndent(cfg, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, strings.TrimSuffix(path, filepath.Ext(path))+".golden.json", append(got, '\n'))
		})
	}
}

// TestGoldenErrors parses every testdata/errors/* and compares the rendered
// diagnostics with its .golden.txt.
func TestGoldenErrors(t *testing.T) {
	for _, path := range inputs(t, "testdata/errors") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(src, filepath.ToSlash(path))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error; got %+v", cfg)
			}
			var diags hcl.Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("error is %T, want hcl.Diagnostics", err)
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && (d.Subject == nil || d.Detail == "") {
					t.Errorf("diagnostic %q lacks a subject or a detail", d.Summary)
				}
			}
			compareGolden(t, strings.TrimSuffix(path, filepath.Ext(path))+".golden.txt", []byte(config.FormatError(err, nil)))
		})
	}
}

func inputs(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	for _, pat := range []string{"*.hcl", "*.conf"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	if len(paths) == 0 {
		t.Fatalf("no inputs in %s", dir)
	}
	return paths
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./internal/config -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./internal/config -update after checking the change)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
