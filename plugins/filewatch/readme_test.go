package filewatch_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/svidagent/svidagent/internal/config"
)

// The README's examples are valid agent.hcl.
func TestREADMEExamples(t *testing.T) {
	src, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllSubmatch(src, -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d hcl examples, want at least 2", len(blocks))
	}
	for i, b := range blocks {
		t.Run("example "+string(rune('1'+i)), func(t *testing.T) {
			if _, err := config.Parse(b[1], "README.md"); err != nil {
				t.Fatalf("example %d does not parse: %v", i+1, err)
			}
		})
	}
}
