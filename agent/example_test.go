package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/svidagent/svidagent/agent"
)

// Example embeds the agent: a config file with the built-in dev issuer (an
// in-memory CA, NOT FOR PRODUCTION) and the PEM files writer, run once
// (daemon_mode = false), as `svidagent run` would. A daemon passes a
// context that is cancelled on shutdown instead.
func Example() {
	dir, err := os.MkdirTemp("", "svidagent-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	cfgPath := filepath.Join(dir, "agent.hcl")
	cfg := fmt.Sprintf(`
daemon_mode = false

issuer "dev" {
  trust_domain = "example.org"
}

svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = %q
  }
}
`, filepath.Join(dir, "out"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		panic(err)
	}

	c, err := agent.LoadConfig(cfgPath)
	if err != nil {
		panic(err) // hcl.Diagnostics: file:line:col and the fix
	}
	quiet := slog.New(slog.DiscardHandler)
	if err := agent.New(c, agent.WithLogger(quiet)).Run(context.Background()); err != nil {
		panic(err)
	}

	entries, _ := os.ReadDir(filepath.Join(dir, "out"))
	var names []string
	for _, e := range entries {
		info, _ := e.Info()
		names = append(names, fmt.Sprintf("%s %v", e.Name(), info.Mode().Perm()))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Println(n)
	}
	// Output:
	// svid.pem -rw-r--r--
	// svid_bundle.pem -rw-r--r--
	// svid_key.pem -rw-------
}
