package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/plugins/files"
)

const x509Names = "svid_file_name = \"a\"\nsvid_key_file_name = \"b\"\nsvid_bundle_file_name = \"c\"\n"

func TestModes(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    uint32
		warn    bool
		wantErr string
	}{
		{name: "octal literal", value: "0640", want: 0o640},
		{name: "octal string", value: `"0640"`, want: 0o640},
		{name: "string without zero is octal", value: `"640"`, want: 0o640},
		{name: "decimal literal as HCL v1 reads it", value: "416", want: 416, warn: true},
		{name: "decimal over 0777", value: "644", wantErr: "is decimal 644, over 0777; write it in octal with a leading zero: 0644"},
		{name: "octal over 0777", value: "01644", wantErr: "over 0777"},
		{name: "not octal digits", value: "0678", wantErr: "not an octal number"},
		{name: "fraction", value: "0.5", wantErr: "not a whole number"},
		{name: "zero is the default", value: "0", want: 0o600},
		{name: "negative", value: "-1", wantErr: "must be positive"},
		{name: "bool", value: "true", wantErr: "must be an octal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := x509Names + "key_file_mode = " + tt.value + "\n"
			cfg, err := config.Parse([]byte(src), "helper.conf")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(config.FormatError(err, nil), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(config.FormatError(err, nil), "helper.conf:4:17") {
					t.Errorf("error does not point at the value:\n%s", config.FormatError(err, nil))
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %s", config.FormatError(err, nil))
			}
			got := cfg.SVIDs[0].Writers[0].Config.(*files.Config).KeyFileMode
			if got != tt.want {
				t.Errorf("KeyFileMode = %#o, want %#o", got, tt.want)
			}
			if warned := len(cfg.Warnings) > 0; warned != tt.warn {
				t.Errorf("warnings = %v, want warning: %v", cfg.Warnings, tt.warn)
			}
		})
	}
}

func TestNativeModes(t *testing.T) {
	src := `issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir            = "/run/web"
    cert_file_mode = 0444
    key_file_mode  = "0400"
  }
}
`
	cfg, err := config.Parse([]byte(src), "agent.hcl")
	if err != nil {
		t.Fatalf("Parse: %s", config.FormatError(err, nil))
	}
	fc := cfg.SVIDs[0].Writers[0].Config.(*files.Config)
	if fc.CertFileMode != 0o444 || fc.KeyFileMode != 0o400 {
		t.Errorf("modes = %#o, %#o; want 0444, 0400", fc.CertFileMode, fc.KeyFileMode)
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want config.Format
	}{
		{name: "issuer block", src: "issuer \"dev\" {}\nsvid \"a\" {\n spiffe_id = \"spiffe://example.org/a\"\n writer \"files\" { dir = \"d\" }\n}\n", want: config.FormatNative},
		{name: "keys only", src: x509Names, want: config.FormatSPIFFEHelper},
		{name: "daemon_mode is in both", src: "daemon_mode = false\n" + x509Names, want: config.FormatSPIFFEHelper},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.src), "x")
			if err != nil {
				t.Fatalf("Parse: %s", config.FormatError(err, nil))
			}
			if cfg.Format != tt.want {
				t.Errorf("Format = %q, want %q", cfg.Format, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "helper.conf")
	if err := os.WriteFile(path, []byte(x509Names), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != path {
		t.Errorf("Path = %q, want %q", cfg.Path, path)
	}
	if _, err := config.Load(filepath.Join(dir, "missing.conf")); err == nil || !strings.HasPrefix(err.Error(), "reading config: ") {
		t.Errorf("Load(missing) = %v, want a reading config error", err)
	}
}

func TestFormatErrorSnippet(t *testing.T) {
	src := []byte(x509Names + "key_file_mode = 644\n")
	_, err := config.Parse(src, "helper.conf")
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	f, diags := hclsyntax.ParseConfig(src, "helper.conf", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := config.FormatError(err, map[string]*hcl.File{"helper.conf": f})
	want := "helper.conf:4:17: error: Invalid file mode\n" +
		"    key_file_mode = 644\n" +
		"                    ^^^\n" +
		"    key_file_mode = 644 is decimal 644, over 0777; write it in octal with a leading zero: 0644.\n"
	if got != want {
		t.Errorf("FormatError =\n%s\nwant\n%s", got, want)
	}
	if got := config.FormatError(fmt.Errorf("plain"), nil); got != "plain\n" {
		t.Errorf("FormatError(plain) = %q", got)
	}
}

func ExampleParse() {
	src := []byte(`
cert_dir              = "certs"
svid_file_name        = "svid.pem"
svid_key_file_name    = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
key_file_mode         = 0640
`)
	cfg, err := config.Parse(src, "helper.conf")
	if err != nil {
		fmt.Print(config.FormatError(err, nil))
		return
	}
	w := cfg.SVIDs[0].Writers[0]
	fmt.Printf("%s: svid %q, writer %s, key mode %#o\n", cfg.Format, cfg.SVIDs[0].Name, w.Name, w.Config.(*files.Config).KeyFileMode)
	// Output: spiffe-helper: svid "default", writer files, key mode 0640
}

func ExampleFormatError() {
	_, err := config.Parse([]byte("issuer \"workloadapi\" {}\nsvid \"web\" {\n  renew_fraction = 2\n  writer \"files\" { dir = \"/run/web\" }\n}\n"), "agent.hcl")
	fmt.Print(config.FormatError(err, nil))
	// Output:
	// agent.hcl:3:20: error: Invalid renew_fraction
	//     renew_fraction = 2 must be between 0 and 1, exclusive: the fraction of a credential's lifetime after which it is renewed; 0.5 renews at half-life.
}
