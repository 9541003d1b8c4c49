package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	if err := os.WriteFile(good, []byte("issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"out\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("agent_address = \"/tmp/a.sock\"\ncert_dir = \"c\"\nsvid_file_name = \"s.pem\"\nsvid_key_file_name = \"k.pem\"\nsvid_bundle_file_name = \"b.pem\"\nrenew_signal = \"SIGFOO\"\npid_file_name = \"p\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout string
		wantStderr string
	}{
		{name: "version", args: []string{"version"}, code: 0, wantStdout: "svidagent "},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"run", "-nope"}, code: 2, wantStderr: "flag provided but not defined"},
		{name: "stray argument", args: []string{"run", "-config", good, "extra"}, code: 2, wantStderr: `unexpected argument "extra"`},
		{name: "bad log level", args: []string{"fetch", "-config", good, "-log-level", "loud"}, code: 2, wantStderr: "-log-level"},
		{name: "bad log format", args: []string{"fetch", "-config", good, "-log-format", "xml"}, code: 2, wantStderr: "-log-format"},
		{name: "validate ok", args: []string{"validate", "-config", good}, code: 0, wantStdout: "valid native configuration"},
		{name: "validate helper.conf error", args: []string{"validate", "-config", bad}, code: 2, wantStderr: "bad.conf:6:16: error:"},
		{name: "spiffe-helper form with config error", args: []string{"-config", bad}, code: 2, wantStderr: "SIGFOO"},
		{name: "missing file", args: []string{"validate", "-config", filepath.Join(dir, "none.hcl")}, code: 2, wantStderr: "none.hcl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.wantStderr)
			}
		})
	}
}

func TestFindConfigDefault(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := findConfig(""); err == nil {
		t.Fatal("no error with neither agent.hcl nor helper.conf present")
	}
	for _, name := range []string{"helper.conf", "agent.hcl"} {
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := findConfig("")
		if err != nil || got != name {
			t.Fatalf("findConfig = %q, %v; want %q", got, err, name)
		}
	}
}
