package subproc_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin holds the test binaries, built once per test process by TestMain.
var bin struct {
	dir      string
	notifier string // testdata/plugins/notifier
	host     string // testdata/host
	sum      string // sha256 of notifier
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "subproc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// One go build for both binaries: they share the compile work.
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./testdata/plugins/notifier", "./testdata/host")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugins:", err)
		return 1
	}
	bin.dir = dir
	bin.notifier = filepath.Join(dir, "notifier")
	bin.host = filepath.Join(dir, "host")
	b, err := os.ReadFile(bin.notifier)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := sha256.Sum256(b)
	bin.sum = hex.EncodeToString(h[:])
	return m.Run()
}
