package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/svidagent/svidagent/internal/config"
)

// unknownKeys returns a helper.conf with n unknown keys (and X.509 names).
func unknownKeys(n int) []byte {
	var b strings.Builder
	b.WriteString(x509Names)
	for i := range n {
		fmt.Fprintf(&b, "unknown_key_%d = %d\n", i, i)
	}
	return []byte(b.String())
}

// nativeUnknownKeys returns an agent.hcl with n unknown keys in a writer.
func nativeUnknownKeys(n int) []byte {
	var b strings.Builder
	b.WriteString("issuer \"dev\" {}\nsvid \"web\" {\n  spiffe_id = \"spiffe://example.org/web\"\n  writer \"files\" {\n    dir = \"out\"\n")
	for i := range n {
		fmt.Fprintf(&b, "    unknown_key_%d = %d\n", i, i)
	}
	b.WriteString("  }\n}\n")
	return []byte(b.String())
}

// BenchmarkErrors measures reporting every unknown key of a file: the
// cost per key must not grow with the number of keys.
func BenchmarkErrors(b *testing.B) {
	for _, n := range []int{1_000, 20_000} {
		for _, f := range []struct {
			name string
			src  []byte
		}{{"helper.conf", unknownKeys(n)}, {"agent.hcl", nativeUnknownKeys(n)}} {
			b.Run(fmt.Sprintf("%s/%d", f.name, n), func(b *testing.B) {
				for b.Loop() {
					_, err := config.Parse(f.src, f.name)
					if err == nil {
						b.Fatal("Parse succeeded")
					}
					// As validate prints it: quoting each line.
					_ = config.FormatError(err, map[string]*hcl.File{f.name: {Bytes: f.src}})
				}
			})
		}
	}
}
