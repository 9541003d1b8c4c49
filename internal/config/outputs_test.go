package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/svidagent/svidagent/internal/config"
)

// TestOutputNames: every file name an output is written under is a plain
// name inside the output directory, or a clear error at the attribute.
func TestOutputNames(t *testing.T) {
	long := strings.Repeat("a", 256)
	tests := []struct {
		name    string
		writer  string // attributes of a native files writer, after dir
		jwt     string // file_name of a native jwt block, when set
		wantErr string
		wantPos string
	}{
		{name: "plain names", writer: `svid_file_name = "svid.pem"`, jwt: `"api.token"`},
		{name: "255 bytes", writer: `svid_file_name = "` + long[:255] + `"`, jwt: `"` + long[:255] + `"`},
		{name: "writer name over 255 bytes", writer: `svid_file_name = "` + long + `"`, wantErr: "is 256 bytes", wantPos: ":6:22"},
		{name: "jwt traversal", jwt: `"../../etc/cron.d/x"`, wantErr: "contains a path separator", wantPos: ":10:17"},
		{name: "jwt absolute", jwt: `"/etc/passwd"`, wantErr: "contains a path separator", wantPos: ":10:17"},
		{name: "jwt NUL", jwt: `"a\u0000b"`, wantErr: "NUL", wantPos: ":10:17"},
		{name: "jwt dot dot", jwt: `".."`, wantErr: "is not a file", wantPos: ":10:17"},
		{name: "jwt dot", jwt: `"."`, wantErr: "is not a file", wantPos: ":10:17"},
		{name: "jwt over 255 bytes", jwt: `"` + long + `"`, wantErr: "is 256 bytes", wantPos: ":10:17"},
		{name: "jwt backslash", jwt: `"a\\b"`, wantErr: "contains a path separator", wantPos: ":10:17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwt := ""
			if tt.jwt != "" {
				jwt = "  jwt {\n    audience = \"api\"\n    file_name = " + tt.jwt + "\n  }\n"
			}
			src := "issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"out\"\n    " +
				tt.writer + "\n  }\n" + jwt + "}\n"
			_, err := config.Parse([]byte(src), "agent.hcl")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %s", config.FormatError(err, nil))
				}
				return
			}
			got := config.FormatError(err, nil)
			if err == nil || !strings.Contains(got, tt.wantErr) || !strings.Contains(got, "agent.hcl"+tt.wantPos) {
				t.Fatalf("Parse error =\n%s\nwant %q at agent.hcl%s\n%s", got, tt.wantErr, tt.wantPos, src)
			}
		})
	}
}

// TestHelperOutputNames: the same for helper.conf's keys.
func TestHelperOutputNames(t *testing.T) {
	long := strings.Repeat("b", 300)
	tests := []struct {
		name    string
		src     string
		wantErr string
		wantPos string
	}{
		{name: "svid_file_name over 255", src: "svid_file_name = \"" + long + "\"\nsvid_key_file_name = \"k\"\nsvid_bundle_file_name = \"b\"\n", wantErr: "is 300 bytes", wantPos: ":1:18"},
		{name: "jwt traversal", src: "jwt_svids = [{jwt_audience = \"a\", jwt_svid_file_name = \"../x\"}]\n", wantErr: "contains a path separator", wantPos: ":1:56"},
		{name: "jwt absolute", src: "jwt_svids {\n  jwt_audience = \"a\"\n  jwt_svid_file_name = \"/etc/shadow\"\n}\n", wantErr: "contains a path separator", wantPos: ":3:24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.src), "helper.conf")
			got := config.FormatError(err, nil)
			if err == nil || !strings.Contains(got, tt.wantErr) || !strings.Contains(got, "helper.conf"+tt.wantPos) {
				t.Fatalf("Parse error =\n%s\nwant %q at helper.conf%s", got, tt.wantErr, tt.wantPos)
			}
		})
	}
}

// TestOutputDir: a dir that exists as a regular file is refused; a key
// file mode open to the world, or writable by the group, loads with a
// warning.
func TestOutputDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		src      string // %s is replaced by the regular file's path
		format   string
		wantErr  string
		wantWarn string
		wantPos  string
	}{
		{name: "native dir is a file", format: "agent.hcl", src: "issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"%s\"\n  }\n}\n",
			wantErr: "is a regular file, not a directory", wantPos: ":5:11"},
		{name: "helper cert_dir is a file", format: "helper.conf", src: "cert_dir = \"%s\"\n" + x509Names, wantErr: "is a regular file, not a directory", wantPos: ":1:12"},
		{name: "native dir under a file", format: "agent.hcl", src: "issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"%s/sub\"\n  }\n}\n",
			wantErr: "lies under a regular file", wantPos: ":5:11"},
		{name: "native dir missing is fine", format: "agent.hcl", src: "issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"" + tmp + "/new\"\n  }\n}\n# %s\n"},
		{name: "native key mode 0777", format: "agent.hcl", src: "issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"out\"\n    key_file_mode = 0777\n  }\n}\n# %s\n",
			wantWarn: "key_file_mode = 0777 lets other users read or change the private key", wantPos: ":6:21"},
		{name: "helper key mode 0644", format: "helper.conf", src: x509Names + "key_file_mode = 0644\n# %s\n", wantWarn: "key_file_mode = 0644 lets other users", wantPos: ":4:17"},
		{name: "helper key mode 0600", format: "helper.conf", src: x509Names + "key_file_mode = 0600\n# %s\n"},
		{name: "helper key mode 0640 for a group", format: "helper.conf", src: x509Names + "key_file_mode = 0640\n# %s\n"},
		{name: "helper key mode 0660", format: "helper.conf", src: x509Names + "key_file_mode = 0660\n# %s\n", wantWarn: "key_file_mode = 0660 lets other users", wantPos: ":4:17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.ReplaceAll(tt.src, "%s", file)
			cfg, err := config.Parse([]byte(src), tt.format)
			if tt.wantErr != "" {
				got := config.FormatError(err, nil)
				if err == nil || !strings.Contains(got, tt.wantErr) || !strings.Contains(got, tt.format+tt.wantPos) {
					t.Fatalf("Parse error =\n%s\nwant %q at %s%s", got, tt.wantErr, tt.format, tt.wantPos)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %s", config.FormatError(err, nil))
			}
			warn := config.FormatError(cfg.Warnings, nil)
			if tt.wantWarn == "" {
				if len(cfg.Warnings) > 0 {
					t.Fatalf("warnings:\n%s", warn)
				}
				return
			}
			if len(cfg.Warnings) != 1 || cfg.Warnings[0].Severity != hcl.DiagWarning || !strings.Contains(warn, tt.wantWarn) || !strings.Contains(warn, tt.format+tt.wantPos) {
				t.Fatalf("warnings =\n%s\nwant %q at %s%s", warn, tt.wantWarn, tt.format, tt.wantPos)
			}
		})
	}
}
