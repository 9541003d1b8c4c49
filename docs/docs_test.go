package docs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// shBlock matches a fenced ```sh block of a Markdown file.
var shBlock = regexp.MustCompile("(?ms)^```sh\n(.*?)^```\n")

// shBlocks returns the sh blocks of the Markdown file at path.
func shBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range shBlock.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

func TestShBlocks(t *testing.T) {
	for _, tc := range []struct {
		name, md string
		want     []string
	}{
		{"none", "text\n```go\nx\n```\n", nil},
		{"two", "```sh\na\nb\n```\ntext\n```sh\nc\n```\n", []string{"a\nb\n", "c\n"}},
		{"indented is not a block", "  ```sh\na\n  ```\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.md")
			if err := os.WriteFile(p, []byte(tc.md), 0o644); err != nil {
				t.Fatal(err)
			}
			got := shBlocks(t, p)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("shBlocks = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWritingAPlugin runs every sh block of writing-a-plugin.md, in order,
// in one shell with set -e, from a scratch directory inside this module
// (so that the copied templates import svidagent from the checkout), with
// a freshly built svidagent first on PATH. Then it checks what the
// walkthrough promises: the sha256 pinned in agent.hcl is the module's,
// validate accepted the config, and every conformance run passed.
func TestWritingAPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds svidagent and three plugins; run without -short")
	}
	blocks := shBlocks(t, "writing-a-plugin.md")
	if len(blocks) < 8 {
		t.Fatalf("writing-a-plugin.md has %d sh blocks; the walkthrough has at least 8", len(blocks))
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goBin := goCommand()
	binDir := t.TempDir()
	build := exec.Command(goBin, "build", "-o", filepath.Join(binDir, "svidagent"), "./cmd/svidagent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building svidagent: %v\n%s", err, out)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	// A directory inside the module, ignored by ./... (testdata) and by
	// git (testdata/.gitignore).
	work, err := os.MkdirTemp("testdata", "run-")
	if err != nil {
		t.Fatal(err)
	}
	work, _ = filepath.Abs(work)
	t.Cleanup(func() { _ = os.RemoveAll(work) })

	script := "set -eux\n" + strings.Join(blocks, "\n")
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = work
	env := []string{"PATH=" + binDir + string(os.PathListSeparator) + filepath.Dir(goBin) + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		// The walkthrough sets its own GOOS/GOARCH per command.
		if k, _, _ := strings.Cut(kv, "="); k != "PATH" && k != "GOOS" && k != "GOARCH" && k != "GOFLAGS" {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the walkthrough's commands failed: %v\n%s", err, out.String())
	}
	log := out.String()
	t.Logf("walkthrough output:\n%s", log)

	// The pin in agent.hcl is the sha256 of notifier.wasm, and it is what
	// `svidagent plugin hash` prints.
	dir := filepath.Join(work, "notifier-hello")
	mod, err := os.ReadFile(filepath.Join(dir, "notifier.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(mod)
	want := hex.EncodeToString(sum[:])
	hash, err := exec.Command(filepath.Join(binDir, "svidagent"), "plugin", "hash", filepath.Join(dir, "notifier.wasm")).Output()
	if err != nil {
		t.Fatalf("svidagent plugin hash: %v", err)
	}
	if got := strings.TrimSpace(string(hash)); got != want {
		t.Errorf("svidagent plugin hash printed %s; the file's sha256 is %s", got, want)
	}
	hcl, err := os.ReadFile(filepath.Join(dir, "agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`sha256 = "([0-9a-f]*)"`).FindSubmatch(hcl)
	if pin == nil || string(pin[1]) != want {
		t.Errorf("agent.hcl pins %q, want %s:\n%s", pin, want, hcl)
	}

	// validate and every conformance run said so.
	if !strings.Contains(log, "agent.hcl: valid") {
		t.Error("svidagent validate did not report a valid configuration")
	}
	runs := strings.Count(strings.Join(blocks, "\n"), "svidagent conformance ")
	if got := strings.Count(log, " conforms\n"); got != runs || runs < 4 {
		t.Errorf("%d of %d conformance runs reported that the plugin conforms", got, runs)
	}
	for _, check := range []string{"memory_flat", "write_atomic", "issue_chain_verifies", "notify_no_key_material"} {
		if !regexp.MustCompile(`(?m)^pass +` + check + `\b`).MatchString(log) {
			t.Errorf("no conformance run passed %s", check)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "conformance.xml")); err != nil || fi.Size() == 0 {
		t.Errorf("the -junit report is missing or empty: %v", err)
	}
}

// goCommand is the go command on PATH.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
