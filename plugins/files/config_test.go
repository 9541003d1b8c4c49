package files_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/plugins/files"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*files.Config)
		// want maps each field expected in error to a fragment of its message.
		want map[string]string
	}{
		{"defaults with dir", nil, nil},
		{"dir missing", func(c *files.Config) { c.Dir = "" }, map[string]string{"dir": "dir is required"}},
		{"unknown layout", func(c *files.Config) { c.Layout = "tree" }, map[string]string{"layout": `use "flat", "data", "spiffe-fs" (newest SPIFFE Filesystem Delivery draft), "spiffe-fs-2026-08-13" or "spiffe-fs-2026-02" (pinned earlier drafts)`}},
		{"every layout", func(c *files.Config) { c.Layout = files.LayoutData }, nil},
		{"newest spiffe-fs", func(c *files.Config) { c.Layout = "spiffe-fs" }, nil},
		{"pinned spiffe-fs 2026-08-13", func(c *files.Config) { c.Layout = "spiffe-fs-2026-08-13" }, nil},
		{"pinned spiffe-fs 2026-02", func(c *files.Config) { c.Layout = "spiffe-fs-2026-02" }, nil},
		{"mode too big", func(c *files.Config) { c.KeyFileMode = 0o1000 }, map[string]string{"key_file_mode": "mode 01000 is over 0777; use an octal permission such as 0644"}},
		{"decimal 644 by mistake", func(c *files.Config) { c.CertFileMode = 644 }, map[string]string{"cert_file_mode": "mode 01204 is over 0777"}},
		{"all modes checked", func(c *files.Config) {
			c.CertFileMode, c.KeyFileMode, c.JWTBundleFileMode, c.JWTSVIDFileMode = 0o4755, 0o2755, 0o1777, 0o7777
		}, map[string]string{"cert_file_mode": "over 0777", "key_file_mode": "over 0777", "jwt_bundle_file_mode": "over 0777", "jwt_svid_file_mode": "over 0777"}},
		{"0777 is allowed", func(c *files.Config) { c.CertFileMode = 0o777 }, nil},
		{"path separator", func(c *files.Config) { c.SVIDFileName = "certs/svid.pem" }, map[string]string{"svid_file_name": "path separator"}},
		{"empty name", func(c *files.Config) { c.SVIDKeyFileName = "" }, map[string]string{"svid_key_file_name": "is empty"}},
		{"dot dot", func(c *files.Config) { c.SVIDBundleFileName = ".." }, map[string]string{"svid_bundle_file_name": "not a file"}},
		{"reserved prefix", func(c *files.Config) { c.CombinedFileName = "..data" }, map[string]string{"combined_file_name": "reserved"}},
		{"duplicate names", func(c *files.Config) { c.JWTBundleFileName = "svid.pem" }, map[string]string{"jwt_bundle_file_name": "also used by svid_file_name"}},
		{"optional names may be empty", func(c *files.Config) { c.CombinedFileName, c.JWTBundleFileName = "", "" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Dir = "/run/svid"
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fes := hostapi.AsFieldErrors(err)
			if fes == nil {
				t.Fatalf("Validate() = %v, want hostapi.FieldErrors", err)
			}
			var fields []string
			for _, fe := range fes {
				fields = append(fields, fe.Field)
				if frag, ok := tt.want[fe.Field]; !ok {
					t.Errorf("unexpected error on %s: %s", fe.Field, fe.Message)
				} else if !strings.Contains(fe.Message, frag) {
					t.Errorf("%s: message %q lacks %q", fe.Field, fe.Message, frag)
				}
			}
			for f := range tt.want {
				if !slices.Contains(fields, f) {
					t.Errorf("no error on %s; got %v", f, err)
				}
			}
			// New fails on the same config.
			if _, err := files.New(cfg, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	m, ok := registry.Lookup(hostapi.KindWriter, "files")
	if !ok {
		t.Fatal("writer.files is not registered")
	}
	cfg, ok := m.NewConfig().(*files.Config)
	if !ok {
		t.Fatalf("NewConfig returned %T", m.NewConfig())
	}
	if *cfg != *files.DefaultConfig() {
		t.Errorf("NewConfig = %+v, want the defaults", cfg)
	}
	cfg.Dir = t.TempDir()
	p, err := m.New(cfg, registry.Env{Name: "files"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(hostapi.Writer); !ok {
		t.Errorf("New returned %T, not a hostapi.Writer", p)
	}
	if _, err := m.New(struct{}{}, registry.Env{}); err == nil {
		t.Error("New accepted a foreign config type")
	}
}
