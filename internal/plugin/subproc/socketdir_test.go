package subproc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/internal/plugin/subproc"
)

// The plugin's unix socket lives under <StateDir>/run, so a command plugin
// runs with an unwritable $TMPDIR (a read-only root).
func TestSocketUnderStateDir(t *testing.T) {
	state := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(state, "no-such-tmp")) // unwritable: missing
	p, _ := open(t, func(c *subproc.Config) { c.StateDir = state })
	describe(t, p)

	dirs, err := filepath.Glob(filepath.Join(state, "run", "plugin-dir*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("socket directories under %s/run: %v, %v; want one", state, dirs, err)
	}
	if fi, err := os.Stat(filepath.Join(state, "run")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run dir: %v, %v; want mode 0700", fi, err)
	}
	// The plugin's socket, and the host's for the broker (host services).
	entries, err := os.ReadDir(dirs[0])
	if err != nil || len(entries) == 0 {
		t.Fatalf("socket directory %s holds %v (%v); want the plugin's socket", dirs[0], entries, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "plugin") || e.Type()&os.ModeSocket == 0 {
			t.Fatalf("socket directory %s holds %v; want plugin* sockets only", dirs[0], entries)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Fatalf("socket directory %s left after Close: %v", dirs[0], err)
	}
}
