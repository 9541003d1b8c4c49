//go:build !wasip1

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
)

var validConfig = []byte(`{"message":"credentials rotated"}`)

// TestConformanceInProcess runs the suite over the plugin in this process:
// fast, and what to run while editing.
func TestConformanceInProcess(t *testing.T) {
	conformance.Run(t, conformance.Target{
		Kind:    hostapi.KindNotifier,
		NewImpl: func() any { return &logNotifier{} },
		// No ConfigJSON: the suite runs with info.ExampleConfigJSON, as
		// `svidagent conformance` does without -config.
		Info:              info,
		InvalidConfigJSON: []byte(`{"message":""}`),
	})
}

// TestConformanceBuilt builds the plugin as it ships, a .wasm module and a
// go-plugin executable, and runs the suite over both.
func TestConformanceBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin twice; run without -short")
	}
	dir := t.TempDir()
	goBin := goCommand()
	for _, b := range []struct {
		out  string
		args []string
		env  []string
	}{
		{"notifier.wasm", []string{"-buildmode=c-shared"}, []string{"GOOS=wasip1", "GOARCH=wasm"}},
		{"notifier", nil, nil},
	} {
		cmd := exec.Command(goBin, append(append([]string{"build"}, b.args...), "-o", filepath.Join(dir, b.out), ".")...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.out, err, out)
		}
		t.Run(b.out, func(t *testing.T) {
			conformance.Run(t, conformance.Target{
				Kind:              hostapi.KindNotifier,
				Path:              filepath.Join(dir, b.out),
				ConfigJSON:        validConfig,
				InvalidConfigJSON: []byte(`{"message":""}`),
			})
		})
	}
}

// goCommand is the go command on PATH.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
