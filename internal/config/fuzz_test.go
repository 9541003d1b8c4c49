package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/svidagent/svidagent/internal/config"
)

// FuzzLoad feeds both schemas to Parse: it must never panic, and every
// error it reports must point at the source.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"testdata", "testdata/errors"} {
		for _, pat := range []string{"*.hcl", "*.conf"} {
			paths, _ := filepath.Glob(filepath.Join(dir, pat))
			for _, p := range paths {
				src, err := os.ReadFile(p)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(src, filepath.Ext(p))
			}
		}
	}
	// Deep nesting and long operator chains: the HCL parser recurses on
	// each level, and the limits must refuse them before it does.
	for _, src := range []string{
		"x = " + deep("(", "1", ")", 100_000),
		"x = " + deep("[", "1", "]", 100_000),
		"x = " + deep(`"${`, "1", `}"`, 50_000),
		"x = <<EOT\n" + deep("${[", "1", "]}", 50_000) + "\nEOT\n",
		"x = \"" + deep("%{ if true }", "a", "%{ endif }", 20_000) + "\"",
		deep("b {\n", "", "}\n", 50_000),
		"x = " + strings.Repeat("!", 100_000) + "true",
		"x = " + strings.Repeat("a ? b : ", 50_000) + "c",
		"x = \"((((\" # [[[[\n/* {{{{ */ y = <<EOT\n((((\nEOT\n",
	} {
		f.Add([]byte(src), ".hcl")
	}
	f.Fuzz(func(t *testing.T, src []byte, ext string) {
		cfg, err := config.Parse(src, "fuzz"+ext)
		if err == nil {
			if cfg == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		var diags hcl.Diagnostics
		if !errors.As(err, &diags) {
			t.Fatalf("error is %T, want hcl.Diagnostics: %v", err, err)
		}
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject == nil {
				t.Fatalf("diagnostic %q (%s) has no subject", d.Summary, d.Detail)
			}
		}
	})
}
