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

// TestHelpListsFlags: `svidagent run -h` and `validate -h` list their
// flags, with what each does, and exit 0.
func TestHelpListsFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{args: []string{"run", "-h"}, want: []string{"svidagent run [flags]", "-config", "-daemon-mode", "-log-level", "-log-format", "configuration file"}},
		{args: []string{"validate", "-h"}, want: []string{"svidagent validate [flags]", "-config", "configuration file"}, notWant: []string{"-daemon-mode"}},
		{args: []string{"fetch", "--help"}, want: []string{"svidagent fetch [flags]", "-config", "-log-level"}, notWant: []string{"-daemon-mode"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit code %d, want %d", code, exitOK)
			}
			out := stdout.String() + stderr.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("help has %q:\n%s", w, out)
				}
			}
		})
	}
}
