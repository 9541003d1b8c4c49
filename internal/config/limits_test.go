package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/svidagent/svidagent/internal/config"
)

// deep returns open*n + mid + close*n.
func deep(open, mid, close string, n int) string {
	return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
}

// fill returns how many times unit fits in a file just under
// MaxFileSize, so that the hostile files test the nesting limits, not the
// size limit.
func fill(unit ...string) int {
	return (config.MaxFileSize - 200) / len(strings.Join(unit, ""))
}

// TestLimitsHostile feeds files that make the HCL parser recurse once per
// level: without the limits each is a fatal stack overflow, which no
// recover catches. Each must be refused with a diagnostic at the place
// that went over the limit.
func TestLimitsHostile(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    string // in the rendered error
		wantPos string // file:line:col
	}{
		{name: "parentheses", src: "daemon_mode = " + deep("(", "true", ")", fill("(", ")")) + "\n", want: "nested too deeply", wantPos: ":1:"},
		{name: "tuples", src: "x = " + deep("[", "1", "]", fill("[", "]")) + "\n", want: "nested too deeply", wantPos: ":1:"},
		{name: "objects", src: "x = " + deep("{a = ", "1", "}", fill("{a = ", "}")) + "\n", want: "nested too deeply", wantPos: ":1:"},
		{name: "blocks", src: deep("b {\n", "", "}\n", fill("b {\n", "}\n")), want: "nested too deeply", wantPos: ":65:"},
		{name: "function calls", src: "x = " + deep("f(", "1", ")", fill("f(", ")")) + "\n", want: "nested too deeply", wantPos: ":1:"},
		{name: "string templates", src: "x = " + deep(`"${`, "1", `}"`, fill(`"${`, `}"`)) + "\n", want: "nested too deeply", wantPos: ":1:"},
		{name: "template directives", src: "x = \"" + deep("%{ if true }", "a", "%{ endif }", fill("%{ if true }", "%{ endif }")) + "\"\n", want: "nested too deeply", wantPos: ":1:"},
		{name: "heredoc interpolation", src: "x = <<EOT\n" + deep("${(", "1", ")}", fill("${(", ")}")) + "\nEOT\n", want: "nested too deeply", wantPos: ":2:"},
		{name: "negations", src: "x = " + strings.Repeat("-", fill("-")) + "1\n", want: "too many operators", wantPos: ":1:"},
		{name: "spaced negations", src: "x = " + strings.Repeat("! ", fill("! ")) + "true\n", want: "too many operators", wantPos: ":1:"},
		{name: "conditionals", src: "x = " + strings.Repeat("true ? 1 : ", fill("true ? 1 : ")) + "2\n", want: "too many operators", wantPos: ":1:"},
		{name: "sums", src: "x = 1" + strings.Repeat("+1", fill("+1")) + "\n", want: "too many operators", wantPos: ":1:"},
		{name: "index chain", src: "x = y" + strings.Repeat("[z]", fill("[z]")) + "\n", want: "too many operators", wantPos: ":1:"},
		{name: "helper.conf keys", src: "cert_dir = " + deep("(", `"d"`, ")", fill("(", ")")) + "\n" + x509Names, want: "nested too deeply", wantPos: ":1:"},
		{name: "native block", src: "issuer \"dev\" {\n  ttl = " + deep("(", `"1h"`, ")", fill("(", ")")) + "\n}\n", want: "nested too deeply", wantPos: ":2:"},
		{name: "unterminated parentheses", src: "x = " + strings.Repeat("(", fill("(")), want: "nested too deeply", wantPos: ":1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"agent.hcl", "helper.conf"} {
				_, err := config.Parse([]byte(tt.src), name)
				if err == nil {
					t.Fatalf("%s: Parse succeeded, want a limit error", name)
				}
				got := config.FormatError(err, nil)
				if !strings.Contains(got, tt.want) || !strings.Contains(got, name+tt.wantPos) {
					t.Fatalf("%s: error =\n%s\nwant %q at %s%s", name, got, tt.want, name, tt.wantPos)
				}
				var diags hcl.Diagnostics
				if !errors.As(err, &diags) || len(diags) != 1 || diags[0].Subject == nil {
					t.Fatalf("%s: error is not one diagnostic with a subject: %#v", name, err)
				}
			}
		})
	}
}

// TestLimitsAllow: brackets, operators and heredoc markers inside strings,
// comments and heredocs do not count, nor do siblings: only what nests.
func TestLimitsAllow(t *testing.T) {
	many := strings.Repeat("((((([[[[[{{{{{", 1000)
	tests := []struct {
		name string
		src  string
	}{
		{name: "string", src: `x = "` + many + `"`},
		{name: "escaped quote in string", src: `x = "\"` + many + `"`},
		{name: "escaped interpolation", src: `x = "$${` + many + `"`},
		{name: "line comment", src: "# " + many + "\nx = 1"},
		{name: "slash comment", src: "// " + many + "\nx = 1"},
		{name: "block comment", src: "/* " + many + "\n" + many + " */\nx = 1"},
		{name: "heredoc", src: "x = <<EOT\n" + many + "\n\"\nEOT\ny = 1"},
		{name: "indented heredoc", src: "x = <<-EOT\n  " + many + "\n  EOT\ny = 1"},
		{name: "interpolation closes", src: `x = "${"a"}` + many + `"`},
		{name: "long flat list", src: "x = [" + strings.Repeat("1, ", 50_000) + "1]"},
		{name: "many attributes", src: strings.Repeat("x = -1 + 2 - 3\n", 10_000)},
		{name: "many sibling blocks", src: strings.Repeat("b { c { d = [(1)] } }\n", 10_000)},
		{name: "nesting at the limit", src: "x = " + deep("(", "1", ")", config.MaxNesting)},
		{name: "directives in sequence", src: `x = "` + strings.Repeat("%{ if true }a%{ endif }", 1000) + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.src), "helper.conf")
			if err == nil {
				return // not expected to be a valid config, only not refused by the limits
			}
			if got := config.FormatError(err, nil); strings.Contains(got, "nested too deeply") || strings.Contains(got, "too many operators") || strings.Contains(got, "too large") {
				t.Fatalf("refused by a limit:\n%s", got)
			}
		})
	}
}

// TestLoadRefusesLargeFile: a 50 MB file is refused by the size limit
// without being read or parsed.
func TestLoadRefusesLargeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "helper.conf")
	big := bytes.Repeat([]byte("x = [1, 2, 3, 4, 5, 6, 7, 8]\n"), 50<<20/29)
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	got := config.FormatError(err, nil)
	if !strings.Contains(got, path+":1:1: error: Configuration file too large") || !strings.Contains(got, "1048576") {
		t.Fatalf("Load = %q, want a size limit error at %s:1:1", got, path)
	}
	if _, err := config.Parse(big, "helper.conf"); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("Parse = %v, want a size limit error", err)
	}
}

// BenchmarkLoadLarge measures refusing a 50 MB file.
func BenchmarkLoadLarge(b *testing.B) {
	path := filepath.Join(b.TempDir(), "helper.conf")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x = 1\n"), 50<<20/6), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := config.Load(path); err == nil {
			b.Fatal("Load succeeded")
		}
	}
}

// TestSourceFiles: the files an error points at are read for quoting,
// except one over the size limit.
func TestSourceFiles(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "helper.conf")
	if err := os.WriteFile(small, []byte(x509Names+"key_file_mode = 644\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(small)
	if got := config.FormatError(err, config.SourceFiles(err)); !strings.Contains(got, "    key_file_mode = 644\n                    ^^^\n") {
		t.Errorf("FormatError does not quote the line:\n%s", got)
	}
	big := filepath.Join(dir, "big.conf")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), config.MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(big)
	if files := config.SourceFiles(err); files[big] != nil {
		t.Errorf("SourceFiles read the file over the limit")
	}
}
