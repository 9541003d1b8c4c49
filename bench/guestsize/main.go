// Command guestsize breaks a WebAssembly module down by Go package: the
// bytes of function bodies per package (from the module's name section),
// the data segments, and the other sections. It is what
// docs/PERFORMANCE.md's guest size breakdown was measured with:
//
//	go run ./bench/guestsize -top 25 plugin.wasm
//
// Function names are grouped by their package path: everything before the
// first "." after the last "/" ("crypto/x509.parseCertificate" counts for
// crypto/x509).
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	top := flag.Int("top", 30, "number of packages to list")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: guestsize [-top n] module.wasm")
		os.Exit(2)
	}
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := analyze(b)
	if err != nil {
		fmt.Fprintf(os.Stderr, "analyzing %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	fmt.Printf("%-60s %10d\n", "total", len(b))
	for _, s := range r.sections {
		fmt.Printf("  section %-50s %10d\n", s.name, s.size)
	}
	pkgs := make([]string, 0, len(r.byPkg))
	for p := range r.byPkg {
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool { return r.byPkg[pkgs[i]] > r.byPkg[pkgs[j]] })
	fmt.Printf("code by package (top %d of %d):\n", min(*top, len(pkgs)), len(pkgs))
	for _, p := range pkgs[:min(*top, len(pkgs))] {
		fmt.Printf("  %-58s %10d\n", p, r.byPkg[p])
	}
}

type section struct {
	name string
	size int
}

type result struct {
	sections []section
	byPkg    map[string]int
}

var sectionNames = map[byte]string{1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
	7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}

// reader reads LEB128 values and bytes from a wasm module.
type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 1<<32-1 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

func (r *reader) bytes(n uint32) []byte {
	if uint64(n) > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1() byte {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated or malformed module")
	}
	r.b = nil
}

func analyze(b []byte) (*result, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module")
	}
	res := &result{byPkg: map[string]int{}}
	var (
		importedFuncs uint32
		bodies        []int
		names         = map[uint32]string{}
	)
	r := &reader{b: b[8:]}
	for len(r.b) > 0 && r.err == nil {
		id := r.byte1()
		size := r.u32()
		body := r.bytes(size)
		if r.err != nil {
			break
		}
		name := sectionNames[id]
		s := &reader{b: body}
		switch id {
		case 0:
			n := s.bytes(s.u32())
			name = "custom " + string(n)
			if string(n) == "name" {
				readNames(s, names)
			}
		case 2:
			importedFuncs = countFuncImports(s)
		case 10:
			for i, n := uint32(0), s.u32(); i < n && s.err == nil; i++ {
				sz := s.u32()
				s.bytes(sz)
				bodies = append(bodies, int(sz))
			}
		}
		res.sections = append(res.sections, section{name, len(body)})
	}
	if r.err != nil {
		return nil, r.err
	}
	for i, sz := range bodies {
		n, ok := names[importedFuncs+uint32(i)]
		if !ok {
			n = "(unnamed)"
		}
		res.byPkg[pkgOf(n)] += sz
	}
	return res, nil
}

func countFuncImports(s *reader) uint32 {
	var funcs uint32
	for i, n := uint32(0), s.u32(); i < n && s.err == nil; i++ {
		s.bytes(s.u32()) // module
		s.bytes(s.u32()) // name
		switch s.byte1() {
		case 0:
			s.u32()
			funcs++
		case 1: // table
			s.byte1()
			limits(s)
		case 2:
			limits(s)
		case 3:
			s.byte1()
			s.byte1()
		}
	}
	return funcs
}

func limits(s *reader) {
	if s.byte1()&1 != 0 {
		s.u32()
	}
	s.u32()
}

func readNames(s *reader, names map[uint32]string) {
	for len(s.b) > 0 && s.err == nil {
		id := s.byte1()
		sub := &reader{b: s.bytes(s.u32())}
		if id != 1 {
			continue
		}
		for i, n := uint32(0), sub.u32(); i < n && sub.err == nil; i++ {
			idx := sub.u32()
			names[idx] = string(sub.bytes(sub.u32()))
		}
	}
}

// pkgOf returns the package path of a function name of Go's wasm name
// section, where "/" in the package path is written "_"
// ("google.golang.org_protobuf_internal_impl.(*MessageInfo).init" is
// google.golang.org_protobuf_internal_impl). A leading domain
// ("github.com_") keeps its dots.
func pkgOf(sym string) string {
	from := 0
	if u := strings.IndexByte(sym, '_'); u > 0 {
		host := sym[:u]
		for _, tld := range []string{".com", ".org", ".io", ".net", ".dev", ".in"} {
			if strings.HasSuffix(host, tld) {
				from = u
			}
		}
	}
	if dot := strings.IndexByte(sym[from:], '.'); dot >= 0 {
		return sym[:from+dot]
	}
	return sym
}
