package conformance_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/conformance/testdata/broken/sdkbugs"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// TestExampleConfig runs the WASM writer template with neither a config
// nor an existing output directory: the suite takes the example config
// from Describe ({"dir":"/out"}) and creates the directory 0700.
func TestExampleConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "not", "yet")
	rep, err := conformance.Check(context.Background(), conformance.Target{
		Kind: hostapi.KindWriter, Path: bin("writer-template.wasm"), CacheDir: cacheDir, OutputDir: out,
		InvalidConfigJSON: []byte(`{"dir":"relative"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Status == conformance.StatusFail {
			t.Errorf("%s failed: %s", r.Name, r.Reason)
		}
	}
	if rep.ExampleConfig != `{"dir":"/out"}` {
		t.Errorf("report's example config = %q, want the template's", rep.ExampleConfig)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("output directory mode = %v, want 0700", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(out, "svid_key.pem")); err != nil {
		t.Errorf("the writer wrote nothing to the created directory: %v", err)
	}
}

func TestExampleConfigRejected(t *testing.T) {
	rep, err := conformance.Check(context.Background(), conformance.Target{
		Kind: hostapi.KindNotifier, Impl: sdkbugs.NoConfig{},
		Info: sdk.Info{Name: "wrongexample", Version: "1", ExampleConfigJSON: []byte(`{"url":"https://hooks.example.com"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := rep.Result("validate_rejects_invalid")
	want := `Validate rejected the example config from Describe {"url":"https://hooks.example.com"}`
	if res.Status != conformance.StatusFail || !strings.HasPrefix(res.Reason, want) {
		t.Errorf("validate_rejects_invalid = %s %q; want fail starting %q", res.Status, res.Reason, want)
	}
}

func TestOutputDirNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := conformance.Check(context.Background(), conformance.Target{
		Kind: hostapi.KindWriter, Path: bin("writer-template.wasm"), CacheDir: cacheDir, OutputDir: filepath.Join(file, "sub"),
	})
	if err == nil || !strings.Contains(err.Error(), "creating the writer's output directory") || !strings.Contains(err.Error(), file) {
		t.Errorf("Check = %v; want an error naming the output directory", err)
	}
}
