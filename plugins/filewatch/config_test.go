package filewatch_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/plugins/filewatch"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*filewatch.Config)
		field string // "" means valid
		want  string // part of the message
	}{
		{name: "defaults with dir", mod: func(c *filewatch.Config) {}},
		{name: "relative dir", mod: func(c *filewatch.Config) { c.Dir = "tls" }},
		{name: "custom names", mod: func(c *filewatch.Config) {
			c.CertFile, c.KeyFile, c.BundleFile = "svid.pem", "svid_key.pem", "bundle.pem"
		}},
		{name: "no dir", mod: func(c *filewatch.Config) { c.Dir = "" }, field: "dir", want: "dir is required; set it"},
		{name: "blank dir", mod: func(c *filewatch.Config) { c.Dir = "  " }, field: "dir", want: "required"},
		{name: "empty cert_file", mod: func(c *filewatch.Config) { c.CertFile = "" }, field: "cert_file", want: `cert_file = "tls.crt"`},
		{name: "path in key_file", mod: func(c *filewatch.Config) { c.KeyFile = "private/tls.key" }, field: "key_file", want: "not a plain file name"},
		{name: "dotdot bundle_file", mod: func(c *filewatch.Config) { c.BundleFile = ".." }, field: "bundle_file", want: "not a plain file name"},
		{name: "reserved ..data", mod: func(c *filewatch.Config) { c.CertFile = "..data" }, field: "cert_file", want: "Kubernetes reserves"},
		{name: "same file twice", mod: func(c *filewatch.Config) { c.KeyFile = "tls.crt" }, field: "key_file", want: "three different files"},
		{name: "bad debounce", mod: func(c *filewatch.Config) { c.Debounce = "soon" }, field: "debounce", want: `like "100ms"`},
		{name: "zero debounce", mod: func(c *filewatch.Config) { c.Debounce = "0s" }, field: "debounce", want: "not positive"},
		{name: "huge debounce", mod: func(c *filewatch.Config) { c.Debounce = "1h" }, field: "debounce", want: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filewatch.DefaultConfig()
			cfg.Dir = "/etc/tls"
			tt.mod(cfg)
			err := cfg.Validate()
			_, newErr := filewatch.New(cfg, nil)
			if tt.field == "" {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, New = %v; want both nil", err, newErr)
				}
				return
			}
			var fes hostapi.FieldErrors
			if !errors.As(err, &fes) {
				t.Fatalf("Validate = %v (%T), want hostapi.FieldErrors", err, err)
			}
			if len(fes) != 1 || fes[0].Field != tt.field || !strings.Contains(fes[0].Message, tt.want) {
				t.Fatalf("Validate = %v, want one error on %q containing %q", err, tt.field, tt.want)
			}
			if newErr == nil {
				t.Fatal("New accepted a config Validate rejects")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := filewatch.DefaultConfig()
	if c.CertFile != "tls.crt" || c.KeyFile != "tls.key" || c.BundleFile != "ca.crt" || c.Debounce != "100ms" || c.Dir != "" {
		t.Fatalf("DefaultConfig = %+v", c)
	}
}

// The agent.hcl loader builds the issuer from its block and maps field
// errors to the attribute's position.
func TestConfigFromHCL(t *testing.T) {
	tests := []struct {
		name    string
		hcl     string
		wantErr string
	}{
		{name: "valid", hcl: `
issuer "legacy" {
  type = "files"
  dir  = "/etc/tls"
}
svid "web" {
  writer "files" { dir = "/tmp/out" }
}`},
		{name: "missing dir", hcl: `
issuer "legacy" {
  type = "files"
}
svid "web" {
  writer "files" { dir = "/tmp/out" }
}`, wantErr: "dir is required"},
		{name: "bad debounce points at the attribute", hcl: `
issuer "legacy" {
  type     = "files"
  dir      = "/etc/tls"
  debounce = "-1s"
}
svid "web" {
  writer "files" { dir = "/tmp/out" }
}`, wantErr: "agent.hcl:5"},
		{name: "unknown attribute", hcl: `
issuer "legacy" {
  type = "files"
  dir  = "/etc/tls"
  cert = "x"
}
svid "web" {
  writer "files" { dir = "/tmp/out" }
}`, wantErr: "cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.hcl), "agent.hcl")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				c, ok := cfg.Issuers[0].Config.(*filewatch.Config)
				if !ok || c.Dir != "/etc/tls" || c.CertFile != "tls.crt" {
					t.Fatalf("issuer config = %#v", cfg.Issuers[0].Config)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
