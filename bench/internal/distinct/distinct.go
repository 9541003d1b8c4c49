// Package distinct makes copies of a WASM module that differ only by an
// appended custom section: the same code under a new sha256, so that no
// compiled code is shared between them, as between distinct vendors'
// plugins (issue 10). bench/wasmrss and the bench tests use it.
package distinct

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Copies writes n copies of the module at path into dir, copy K with a
// custom section "svidagent-bench-copy" holding K appended, and returns
// their paths.
func Copies(path, dir string, n int) ([]string, error) {
	code, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range n {
		p := filepath.Join(dir, fmt.Sprintf("copy-%d.wasm", k))
		if err := os.WriteFile(p, Append(code, "svidagent-bench-copy", strconv.Itoa(k)), 0o600); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Append returns module with a custom section (id 0) named name, holding
// payload, appended.
func Append(module []byte, name, payload string) []byte {
	body := append(uleb(uint64(len(name))), name...)
	body = append(body, payload...)
	out := append(append([]byte(nil), module...), 0)
	out = append(out, uleb(uint64(len(body)))...)
	return append(out, body...)
}

// uleb is n in unsigned LEB128, as the wasm binary format spells sizes.
func uleb(n uint64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
