package config

import (
	"io"
	"os"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Limits on a configuration file, checked by a byte scan before HCL
// parses it. HCL's parser and evaluator recurse once per nesting level and
// per chained operator, and a Go stack overflow is a fatal error that no
// recover catches: without them a file of deep parentheses would take
// `svidagent validate`, or a running agent at its next reload, down. No
// real configuration comes near them.
const (
	// MaxFileSize is the largest configuration file read: 1 MiB.
	MaxFileSize = 1 << 20
	// MaxNesting is the deepest nesting of brackets, braces, parentheses,
	// template interpolations (${ }, %{ }) and template directives
	// (%{ if } ... %{ endif }).
	MaxNesting = 64
	// MaxChain is the most operators (- ! ? + * == ... and the . and [
	// of a traversal) in one expression at one nesting level; a comma or
	// a new attribute starts a new count.
	MaxChain = 256
)

// scan modes.
const (
	inCode = iota
	inString
	inHeredoc
)

// scanFrame is an open bracket, brace, parenthesis or interpolation
// (inCode), or a quoted string or heredoc template around the position.
type scanFrame struct {
	mode   int
	open   byte   // inCode: '(', '[', '{', or '$' for an interpolation; 0 for the file
	marker string // inHeredoc: the closing marker
	chain  int    // inCode: operators so far in the current expression
	ifs    int    // inString, inHeredoc: open %{ if } and %{ for } directives
}

// checkLimits returns a diagnostic when src is over MaxFileSize, or nests
// or chains deeper than MaxNesting or MaxChain. It follows HCL's lexical
// structure (strings, heredocs, comments, interpolations) just far enough
// that nothing written inside a string or a comment counts.
func checkLimits(src []byte, filename string) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return hcl.Diagnostics{tooLarge(filename, int64(len(src)))}
	}
	s := &limitScan{src: src, filename: filename, pos: hcl.InitialPos}
	s.stack = []scanFrame{{mode: inCode}}
	if d := s.run(); d != nil {
		return hcl.Diagnostics{d}
	}
	return nil
}

func tooLarge(filename string, size int64) *hcl.Diagnostic {
	return errorf(fileStart(filename), "Configuration file too large",
		"the file is %d bytes or more; the limit is %d bytes (1 MiB), far more than any configuration needs. Check that the path names the configuration file.",
		size, MaxFileSize)
}

type limitScan struct {
	src      []byte
	filename string
	pos      hcl.Pos // of src[pos.Byte]
	stack    []scanFrame
	depth    int // open code frames and directives, the file excluded
}

func (s *limitScan) top() *scanFrame { return &s.stack[len(s.stack)-1] }

func (s *limitScan) at(off int) byte {
	if i := s.pos.Byte + off; i < len(s.src) {
		return s.src[i]
	}
	return 0
}

func (s *limitScan) has(prefix string) bool {
	return len(s.src)-s.pos.Byte >= len(prefix) && string(s.src[s.pos.Byte:s.pos.Byte+len(prefix)]) == prefix
}

// advance moves n bytes on, keeping line and column.
func (s *limitScan) advance(n int) {
	for ; n > 0 && s.pos.Byte < len(s.src); n-- {
		c := s.src[s.pos.Byte]
		s.pos.Byte++
		switch {
		case c == '\n':
			s.pos.Line++
			s.pos.Column = 1
		case utf8.RuneStart(c):
			s.pos.Column++
		}
	}
}

func (s *limitScan) here() hcl.Range {
	end := s.pos
	end.Byte++
	end.Column++
	return hcl.Range{Filename: s.filename, Start: s.pos, End: end}
}

func (s *limitScan) push(f scanFrame) *hcl.Diagnostic {
	s.stack = append(s.stack, f)
	if f.mode == inCode {
		s.depth++
	}
	return s.checkDepth()
}

func (s *limitScan) checkDepth() *hcl.Diagnostic {
	if s.depth <= MaxNesting {
		return nil
	}
	return errorf(s.here(), "Configuration nested too deeply",
		"brackets, braces, parentheses and template interpolations or directives are nested more than %d levels deep here; the limit is %d, which no configuration needs. Flatten the expression or the blocks.",
		MaxNesting, MaxNesting)
}

func (s *limitScan) pop() {
	if len(s.stack) == 1 {
		return // unbalanced: HCL reports it
	}
	f := s.top()
	if f.mode == inCode {
		s.depth--
	} else {
		s.depth -= f.ifs
	}
	s.stack = s.stack[:len(s.stack)-1]
}

func (s *limitScan) run() *hcl.Diagnostic {
	for s.pos.Byte < len(s.src) {
		var d *hcl.Diagnostic
		if s.top().mode == inCode {
			d = s.code()
		} else {
			d = s.template()
		}
		if d != nil {
			return d
		}
	}
	return nil
}

// code scans one token's worth of code.
func (s *limitScan) code() *hcl.Diagnostic {
	f := s.top()
	c := s.at(0)
	switch {
	case c == '#' || s.has("//"):
		for s.pos.Byte < len(s.src) && s.at(0) != '\n' {
			s.advance(1)
		}
		return nil
	case s.has("/*"):
		s.advance(2)
		for s.pos.Byte < len(s.src) && !s.has("*/") {
			s.advance(1)
		}
		s.advance(2)
		return nil
	case c == '"':
		s.advance(1)
		return s.push(scanFrame{mode: inString})
	case s.has("<<"):
		if marker, n := heredocStart(s.src[s.pos.Byte:]); n > 0 {
			s.advance(n)
			return s.push(scanFrame{mode: inHeredoc, marker: marker})
		}
	case c == '(' || c == '[' || c == '{':
		if c == '[' {
			f.chain++ // an index: a[x][y]... nests as it is evaluated
			if f.chain > MaxChain {
				return s.chainError()
			}
		}
		if d := s.push(scanFrame{mode: inCode, open: c}); d != nil {
			return d
		}
		s.advance(1)
		return nil
	case c == ')' || c == ']' || c == '}':
		if len(s.stack) > 1 {
			s.pop()
		}
		s.advance(1)
		return nil
	case c == ',':
		f.chain = 0
	case c == '\n':
		if f.open == 0 || f.open == '{' {
			f.chain = 0 // a new attribute
		}
	case isOperator(c):
		f.chain++
		if f.chain > MaxChain {
			return s.chainError()
		}
	}
	s.advance(1)
	return nil
}

func (s *limitScan) chainError() *hcl.Diagnostic {
	return errorf(s.here(), "Expression has too many operators",
		"this expression chains more than %d operators (such as - ! ? : + == and the . and [ of a traversal) at one level; the limit is %d, which no configuration needs. Simplify the expression or write its value.",
		MaxChain, MaxChain)
}

func isOperator(c byte) bool {
	switch c {
	case '-', '+', '*', '/', '%', '!', '?', '=', '<', '>', '&', '|', '.':
		return true
	}
	return false
}

// template scans one token's worth of a quoted string or heredoc.
func (s *limitScan) template() *hcl.Diagnostic {
	f := s.top()
	c := s.at(0)
	if f.mode == inHeredoc && (s.pos.Byte == 0 || s.src[s.pos.Byte-1] == '\n') {
		if n := heredocEnd(s.src[s.pos.Byte:], f.marker); n > 0 {
			s.advance(n)
			s.pop()
			return nil
		}
	}
	switch {
	case f.mode == inString && c == '\\':
		s.advance(2)
		return nil
	case f.mode == inString && (c == '"' || c == '\n'):
		// A newline ends a quoted string too: HCL reports it unterminated
		// and goes on with the next line as code.
		s.pop()
		if c == '"' {
			s.advance(1)
		}
		return nil
	case s.has("$${") || s.has("%%{"):
		s.advance(3)
		return nil
	case s.has("${") || s.has("%{"):
		if c == '%' {
			switch directive(s.src[s.pos.Byte+2:]) {
			case "if", "for":
				f.ifs++
				s.depth++
				if d := s.checkDepth(); d != nil {
					return d
				}
			case "endif", "endfor":
				if f.ifs > 0 {
					f.ifs--
					s.depth--
				}
			}
		}
		if d := s.push(scanFrame{mode: inCode, open: '$'}); d != nil {
			return d
		}
		s.advance(2)
		return nil
	}
	s.advance(1)
	return nil
}

// directive returns the keyword that opens a template directive's body
// b (after "%{"): "if", "endif", ...
func directive(b []byte) string {
	i := 0
	if i < len(b) && b[i] == '~' {
		i++
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] >= 'a' && b[j] <= 'z' {
		j++
	}
	return string(b[i:j])
}

// heredocStart reads "<<EOT\n" or "<<-EOT\n" at the start of b, and
// returns the marker and the length up to and including the newline; n is
// 0 when b does not start a heredoc.
func heredocStart(b []byte) (marker string, n int) {
	i := 2
	if i < len(b) && b[i] == '-' {
		i++
	}
	j := i
	for j < len(b) && (b[j] == '_' || b[j] == '-' || b[j] >= 'a' && b[j] <= 'z' || b[j] >= 'A' && b[j] <= 'Z' || j > i && b[j] >= '0' && b[j] <= '9') {
		j++
	}
	if j == i {
		return "", 0
	}
	k := j
	if k < len(b) && b[k] == '\r' {
		k++
	}
	if k >= len(b) || b[k] != '\n' {
		return "", 0
	}
	return string(b[i:j]), k + 1
}

// heredocEnd returns the length of b's first line when, spaces aside, it
// is marker; else 0.
func heredocEnd(b []byte, marker string) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if len(b)-i < len(marker) || string(b[i:i+len(marker)]) != marker {
		return 0
	}
	j := i + len(marker)
	for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r') {
		j++
	}
	if j < len(b) && b[j] != '\n' {
		return 0
	}
	return j
}

// readLimited reads path, refusing a file over MaxFileSize without
// reading the rest of it.
func readLimited(path string) ([]byte, *hcl.Diagnostic, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, tooLarge(path, fi.Size()), nil
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(src) > MaxFileSize {
		return nil, tooLarge(path, int64(len(src))), nil
	}
	return src, nil, nil
}
