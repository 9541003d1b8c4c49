package wasmrt

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// rawExports reads the names of the exported functions and memories from a
// module's export section, without compiling it. Open uses it to refuse a
// module that is plainly not an ABI v1 reactor in milliseconds instead of
// after a compile of seconds; the check on the compiled module stays
// authoritative. ok is false when the bytes cannot be parsed (the compiler
// then reports why).
func rawExports(b []byte) (funcs, mems map[string]bool, ok bool) {
	if len(b) < 8 || !bytes.Equal(b[:8], []byte{0, 'a', 's', 'm', 1, 0, 0, 0}) {
		return nil, nil, false
	}
	b = b[8:]
	for len(b) > 0 {
		id := b[0]
		size, n := leb(b[1:])
		if n == 0 || uint64(len(b)-1-n) < uint64(size) {
			return nil, nil, false
		}
		sec := b[1+n : 1+n+int(size)]
		b = b[1+n+int(size):]
		if id != 7 {
			continue
		}
		funcs, mems = map[string]bool{}, map[string]bool{}
		count, n := leb(sec)
		if n == 0 {
			return nil, nil, false
		}
		sec = sec[n:]
		for i := uint32(0); i < count; i++ {
			l, n := leb(sec)
			if n == 0 || uint64(len(sec)-n) < uint64(l)+1 {
				return nil, nil, false
			}
			name, kind := string(sec[n:n+int(l)]), sec[n+int(l)]
			sec = sec[n+int(l)+1:]
			if _, n = leb(sec); n == 0 {
				return nil, nil, false
			}
			sec = sec[n:]
			switch kind {
			case 0:
				funcs[name] = true
			case 2:
				mems[name] = true
			}
		}
		return funcs, mems, true
	}
	return map[string]bool{}, map[string]bool{}, true
}

// leb decodes an unsigned LEB128 u32; n is 0 when it is malformed.
func leb(b []byte) (v uint32, n int) {
	for shift := 0; n < len(b) && n < 5; shift += 7 {
		c := b[n]
		n++
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, n
		}
	}
	return 0, 0
}

// abiSig is the signature ABI v1 wants of an export.
type abiSig struct {
	name            string
	params, results []api.ValueType
	wat             string
	required        bool
}

var i32, i64 = api.ValueTypeI32, api.ValueTypeI64

var abiV1 = []abiSig{
	{abi.ExportMarker, nil, nil, "(func)", true},
	{abi.ExportAlloc, []api.ValueType{i32}, []api.ValueType{i32}, "(func (param i32) (result i32))", true},
	{abi.ExportFree, []api.ValueType{i32, i32}, nil, "(func (param i32 i32))", true},
	{abi.ExportCall, []api.ValueType{i32, i32}, []api.ValueType{i64}, "(func (param i32 i32) (result i64))", true},
	{"_initialize", nil, nil, "(func)", false},
}

// checkNames checks the names of the exports (hostapi/ABI.md §2).
func checkNames(funcs, mems map[string]bool) error {
	if !funcs[abi.ExportMarker] {
		var others []string
		for name := range funcs {
			if v, ok := strings.CutPrefix(name, abi.MarkerPrefix); ok {
				others = append(others, v)
			}
		}
		sort.Strings(others)
		if len(others) > 0 {
			return fmt.Errorf("checking ABI: plugin speaks ABI %s; this agent supports ABI v1", strings.Join(others, ", "))
		}
		return errors.New("checking ABI: the module does not export svidagent_abi_v1; it is not a svidagent plugin, or was built without the SDK (see hostapi/ABI.md §2)")
	}
	var problems []string
	if !mems["memory"] {
		problems = append(problems, "memory is not exported")
	}
	for _, w := range abiV1 {
		if w.required && !funcs[w.name] {
			problems = append(problems, w.name+" is not exported")
		}
	}
	if funcs["_start"] {
		problems = append(problems, "_start is exported: this is a WASI command; build a reactor (Go: -buildmode=c-shared; clang: -mexec-model=reactor)")
	}
	if len(problems) > 0 {
		return fmt.Errorf("checking ABI v1 exports: %s", strings.Join(problems, "; "))
	}
	return nil
}

// checkExports checks a compiled module against hostapi/ABI.md §2: names
// and signatures.
func checkExports(m wazero.CompiledModule) error {
	defs := m.ExportedFunctions()
	funcs, mems := map[string]bool{}, map[string]bool{}
	for name := range defs {
		funcs[name] = true
	}
	for name := range m.ExportedMemories() {
		mems[name] = true
	}
	if err := checkNames(funcs, mems); err != nil {
		return err
	}
	var problems []string
	for _, w := range abiV1 {
		def, ok := defs[w.name]
		if ok && (!sameTypes(def.ParamTypes(), w.params) || !sameTypes(def.ResultTypes(), w.results)) {
			problems = append(problems, fmt.Sprintf("%s has the wrong signature; want %s", w.name, w.wat))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("checking ABI v1 exports: %s", strings.Join(problems, "; "))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
