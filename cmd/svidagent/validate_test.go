package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateHostile: files that used to end `svidagent validate` in a
// fatal stack overflow, and a 50 MB file, are refused with exit code 2
// and an error at file:line:col that names the limit.
func TestValidateHostile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		file string
		src  string
		want string
	}{
		{name: "deep parentheses", file: "agent.hcl", src: "x = " + strings.Repeat("(", 500_000) + "1" + strings.Repeat(")", 500_000), want: "agent.hcl:1:69: error: Configuration nested too deeply"},
		{name: "deep tuples in helper.conf", file: "helper.conf", src: "cert_dir = " + strings.Repeat("[", 1_000_000), want: "helper.conf:1:76: error: Configuration nested too deeply"},
		{name: "50 MB", file: "big.conf", src: strings.Repeat("# padding padding padding\n", 2<<20), want: "big.conf:1:1: error: Configuration file too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"validate", "-config", path}, &stdout, &stderr); code != exitUsage {
				t.Fatalf("exit code %d, want %d; stderr:\n%.500s", code, exitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr =\n%.500s\nwant %q", &stderr, tt.want)
			}
		})
	}
}
