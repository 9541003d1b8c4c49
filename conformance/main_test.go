package conformance_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Plugins are built once per test binary into binDir; WASM modules compile
// once into the shared cacheDir.
var (
	binDir   string
	cacheDir string
)

// builds are the plugins the tests run: output name, package, and whether
// it is a WASM reactor.
var builds = []struct {
	out, pkg string
	wasm     bool
}{
	{"notifier-webhook.wasm", "../examples/notifier-webhook", true},
	{"notifier-webhook", "../examples/notifier-webhook", false},
	{"nomarker.wasm", "./testdata/broken/nomarker", true},
	{"noservices.wasm", "./testdata/broken/noservices", true},
	{"leak.wasm", "./testdata/broken/leak", true},
	{"keepsrequests.wasm", "./testdata/broken/keepsrequests", true},
	{"unconfigured.wasm", "./testdata/broken/unconfigured", true},
	{"unknownmethod.wasm", "./testdata/broken/unknownmethod", true},
	{"forgetsconfig.wasm", "./testdata/broken/forgetsconfig", true},
	{"strictwire.wasm", "./testdata/broken/strictwire", true},
	{"writer-template.wasm", "../sdk/templates/writer", true},
	{"acceptall", "./testdata/broken/cmd/acceptall", false},
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "conformance-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir, cacheDir = filepath.Join(dir, "bin"), filepath.Join(dir, "cache")
	goBin := goCommand()
	for _, b := range builds {
		args := []string{"build"}
		env := os.Environ()
		if b.wasm {
			args = append(args, "-buildmode=c-shared")
			env = append(env, "GOOS=wasip1", "GOARCH=wasm")
		}
		cmd := exec.Command(goBin, append(args, "-o", filepath.Join(binDir, b.out), b.pkg)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.out, err, out)
			return 1
		}
	}
	return m.Run()
}

func bin(name string) string { return filepath.Join(binDir, name) }

// goCommand is the go command on PATH.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
