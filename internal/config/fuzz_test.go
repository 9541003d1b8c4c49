package config_test

import (
	"errors"
	"os"
	"path/filepath"
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
