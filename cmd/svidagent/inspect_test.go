package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginInspectNeverRunsUnprovenFiles: `plugin inspect` executes a
// subprocess plugin only when it is pinned by -sha256 (and matches) or
// -allow-exec is given. The file here is a shell script that touches a
// marker file when it runs.
func TestPluginInspectNeverRunsUnprovenFiles(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "evil")
	body := []byte("#!/bin/sh\ntouch " + marker + "\n")
	if err := os.WriteFile(script, body, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	pin := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)

	// Not a WebAssembly plugin: the magic, but no svidagent ABI marker.
	noMarker := filepath.Join(dir, "plain.wasm")
	if err := os.WriteFile(noMarker, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		wantRun    bool
		wantStderr string
	}{
		{name: "no pin", args: []string{script}, wantStderr: "-sha256"},
		{name: "no pin, json", args: []string{"-json", script}, wantStderr: "-allow-exec"},
		{name: "wrong pin", args: []string{"-sha256", wrong, script}, wantStderr: "does not match"},
		{name: "malformed pin", args: []string{"-sha256", "xyz", script}, wantStderr: "-sha256"},
		{name: "wasm without the ABI marker", args: []string{noMarker}, wantStderr: "svidagent_abi"},
		// The controls: the gate opens for a matching pin or -allow-exec
		// (the script is no plugin, so inspect still fails, after it ran).
		{name: "matching pin", args: []string{"-sha256", strings.ToUpper(pin), script}, wantRun: true},
		{name: "allow-exec", args: []string{"-allow-exec", script}, wantRun: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(marker)
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"plugin", "inspect"}, tt.args...), &stdout, &stderr)
			_, err := os.Stat(marker)
			ran := err == nil
			if !ran && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if ran != tt.wantRun {
				t.Errorf("the file ran: %v, want %v\nstderr: %s", ran, tt.wantRun, &stderr)
			}
			if code == exitOK {
				t.Errorf("exit code 0 for a file that is no plugin\nstdout: %s", &stdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.wantStderr)
			}
		})
	}
}
