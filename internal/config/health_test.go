package config_test

import (
	"strings"
	"testing"

	"github.com/svidagent/svidagent/internal/config"
)

const healthBase = `issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
}
`

// TestHealthValidation: every health setting validate accepts can run;
// those the listener could not serve are refused at file:line:col.
func TestHealthValidation(t *testing.T) {
	tests := []struct {
		name    string
		health  string // the body of a native health block
		wantErr string // "" for valid
		wantPos string
	}{
		{name: "defaults", health: "enabled = true"},
		{name: "custom paths", health: `liveness_path = "/healthz/live"
readiness_path = "/healthz/ready"`},
		{name: "root path", health: `liveness_path = "/"`},
		{name: "liveness on /status", health: `liveness_path = "/status"`, wantErr: `"/status" is the agent's own status path`, wantPos: ":10:17"},
		{name: "readiness on /metrics", health: `readiness_path = "/metrics"`, wantErr: `"/metrics" is the agent's own`, wantPos: ":10:18"},
		{name: "same paths", health: `liveness_path = "/h"
readiness_path = "/h"`, wantErr: "liveness_path is \"/h\" too", wantPos: ":11:18"},
		{name: "unclean dot dot", health: `readiness_path = "/a/../status"`, wantErr: `is not a clean path; write "/status"`, wantPos: ":10:18"},
		{name: "trailing slash", health: `liveness_path = "/live/"`, wantErr: `write "/live"`, wantPos: ":10:17"},
		{name: "double slash", health: `liveness_path = "//live"`, wantErr: `write "/live"`, wantPos: ":10:17"},
		{name: "wildcard", health: `liveness_path = "/live/{x}"`, wantErr: "letters, digits", wantPos: ":10:17"},
		{name: "space", health: `liveness_path = "/li ve"`, wantErr: "letters, digits", wantPos: ":10:17"},
		{name: "query", health: `liveness_path = "/live?x=1"`, wantErr: "letters, digits", wantPos: ":10:17"},
		{name: "relative", health: `liveness_path = "live"`, wantErr: `write "/live"`, wantPos: ":10:17"},
		{name: "empty", health: `liveness_path = ""`, wantErr: `must be a URL path starting with "/"`, wantPos: ":10:17"},
		{name: "port too large", health: `address = "127.0.0.1:99999"`, wantErr: "port 99999 is not a TCP port", wantPos: ":10:11"},
		{name: "port not a number", health: `address = "127.0.0.1:http"`, wantErr: "not a TCP port", wantPos: ":10:11"},
		{name: "unix without path", health: `address = "unix://"`, wantErr: "listens on TCP only", wantPos: ":10:11"},
		{name: "unix with path", health: `address = "unix:///run/h.sock"`, wantErr: "listens on TCP only", wantPos: ":10:11"},
		{name: "no port", health: `address = "127.0.0.1"`, wantErr: "not a host:port", wantPos: ":10:11"},
		{name: "ephemeral port", health: `address = "127.0.0.1:0"`},
		{name: "all interfaces", health: `address = ":8081"`},
		{name: "ipv6", health: `address = "[::1]:8081"`},
		{name: "expose status", health: "address = \":8081\"\nexpose_status = true"},
		{name: "expose status not bool", health: `expose_status = "yes"`, wantErr: "expose_status", wantPos: ":10:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := healthBase + "\nhealth {\n" + tt.health + "\n}\n"
			cfg, err := config.Parse([]byte(src), "agent.hcl")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %s", config.FormatError(err, nil))
				}
				return
			}
			got := config.FormatError(err, nil)
			if err == nil || !strings.Contains(got, tt.wantErr) || !strings.Contains(got, "agent.hcl"+tt.wantPos) {
				t.Fatalf("Parse = %+v\n%s\nwant an error with %q at agent.hcl%s", cfg, got, tt.wantErr, tt.wantPos)
			}
		})
	}
}

// TestHelperHealthValidation: the same checks on helper.conf's
// health_checks.
func TestHelperHealthValidation(t *testing.T) {
	tests := []struct {
		name    string
		health  string
		wantErr string
	}{
		{name: "defaults", health: "listener_enabled = true"},
		{name: "empty paths are the defaults", health: "liveness_path = \"\"\nreadiness_path = \"\""},
		{name: "liveness on /status", health: `liveness_path = "/status"`, wantErr: `"/status" is the agent's own status path`},
		{name: "unclean", health: `readiness_path = "/a/../status"`, wantErr: "is not a clean path"},
		{name: "same paths", health: "liveness_path = \"/h\"\nreadiness_path = \"/h\"", wantErr: "too"},
		{name: "port too large", health: "bind_port = 99999", wantErr: "not a TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := x509Names + "health_checks {\n" + tt.health + "\n}\n"
			_, err := config.Parse([]byte(src), "helper.conf")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %s", config.FormatError(err, nil))
				}
				return
			}
			if got := config.FormatError(err, nil); err == nil || !strings.Contains(got, tt.wantErr) || !strings.Contains(got, "helper.conf:5:") {
				t.Fatalf("Parse error =\n%s\nwant %q at helper.conf:5", got, tt.wantErr)
			}
		})
	}
}
