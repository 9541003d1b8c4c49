package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/svidagent/svidagent/hostapi"
)

// FormatError renders err for a terminal. When err holds hcl.Diagnostics,
// each becomes "file:line:col: severity: summary" followed by its detail,
// indented; with files (as kept by the caller, keyed by file name) the
// offending source line is quoted under it with a caret. Any other error
// is rendered with its Error method.
func FormatError(err error, files map[string]*hcl.File) string {
	if err == nil {
		return ""
	}
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) {
		var d *hcl.Diagnostic
		if !errors.As(err, &d) {
			return err.Error() + "\n"
		}
		diags = hcl.Diagnostics{d}
	}
	var b strings.Builder
	lines := map[string][]string{} // each file split once
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "%s: %s\n", sev, d.Summary)
		if d.Subject != nil && files != nil {
			if f := files[d.Subject.Filename]; f != nil {
				ls, ok := lines[d.Subject.Filename]
				if !ok {
					ls = strings.Split(string(f.Bytes), "\n")
					lines[d.Subject.Filename] = ls
				}
				if line, ok := sourceLine(ls, d.Subject.Start.Line); ok {
					fmt.Fprintf(&b, "    %s\n", line)
					width := 1
					if d.Subject.End.Line == d.Subject.Start.Line && d.Subject.End.Column > d.Subject.Start.Column {
						width = d.Subject.End.Column - d.Subject.Start.Column
					}
					fmt.Fprintf(&b, "    %s%s\n", caretPad(line, d.Subject.Start.Column), strings.Repeat("^", width))
				}
			}
		}
		if d.Detail != "" {
			for _, l := range strings.Split(d.Detail, "\n") {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	return b.String()
}

// SourceFiles reads the files err's diagnostics point at, for
// [FormatError] to quote; a file that cannot be read, or is over
// MaxFileSize, is left out (its lines are not quoted).
func SourceFiles(err error) map[string]*hcl.File {
	files := map[string]*hcl.File{}
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) {
		return files
	}
	for _, d := range diags {
		if d.Subject == nil {
			continue
		}
		name := d.Subject.Filename
		if _, seen := files[name]; seen {
			continue
		}
		files[name] = nil
		if src, tooLarge, err := readLimited(name); err == nil && tooLarge == nil {
			files[name] = &hcl.File{Bytes: src}
		}
	}
	return files
}

// sourceLine returns line n (1-based) of lines without its carriage
// return.
func sourceLine(lines []string, n int) (string, bool) {
	if n < 1 || n > len(lines) {
		return "", false
	}
	return strings.TrimRight(lines[n-1], "\r"), true
}

// caretPad returns the whitespace that puts a caret under column col of
// line, keeping tabs so that it lines up.
func caretPad(line string, col int) string {
	var b strings.Builder
	for i, r := range line {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// errorf returns an error diagnostic at subject.
func errorf(subject hcl.Range, summary, detail string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detail, args...),
		Subject:  subject.Ptr(),
	}
}

// warnf returns a warning diagnostic at subject.
func warnf(subject hcl.Range, summary, detail string, args ...any) *hcl.Diagnostic {
	d := errorf(subject, summary, detail, args...)
	d.Severity = hcl.DiagWarning
	return d
}

// fileStart is the range of a file's first character, the subject of
// problems that belong to no single attribute.
func fileStart(filename string) hcl.Range {
	return hcl.Range{
		Filename: filename,
		Start:    hcl.InitialPos,
		End:      hcl.Pos{Line: 1, Column: 1, Byte: 0},
	}
}

// didYouMean returns ` Did you mean "x"?` for the closest of candidates to
// given, or "".
func didYouMean(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(given), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// quoteList renders names as `"a", "b" and "c"`.
func quoteList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// validator is the optional method of a plugin config struct.
type validator interface{ Validate() error }

// validatePlugin runs cfg's Validate method, if it has one, and maps its
// FieldErrors onto the source: a field's first dot-separated part names an
// attribute (or a nested block) of body; rename maps plugin field names to
// the attribute names used in the file (helper.conf's keys differ). A
// field that matches nothing, or an error that is no FieldErrors, points at
// fallback.
func validatePlugin(cfg any, what string, body *hclsyntax.Body, rename map[string]string, fallback hcl.Range) hcl.Diagnostics {
	v, ok := cfg.(validator)
	if !ok {
		return nil
	}
	err := v.Validate()
	if err == nil {
		return nil
	}
	fes := hostapi.AsFieldErrors(err)
	if fes == nil {
		return hcl.Diagnostics{errorf(fallback, "Invalid "+what, "%s; fix the %s.", err, what)}
	}
	var diags hcl.Diagnostics
	for _, fe := range fes {
		field := fe.Field
		if r, ok := rename[field]; ok {
			field = r
		}
		head, _, _ := strings.Cut(field, ".")
		subject := fallback
		found := false
		if body != nil {
			if a, ok := body.Attributes[head]; ok {
				subject, found = a.SrcRange, true
			} else {
				for _, b := range body.Blocks {
					if b.Type == head {
						subject, found = b.DefRange(), true
						break
					}
				}
			}
		}
		msg := fe.Message
		if !found && field != "" {
			msg = fmt.Sprintf("%s: %s", field, msg)
		}
		diags = append(diags, errorf(subject, fmt.Sprintf("Invalid %s %s", what, field), "%s", msg))
	}
	sort.SliceStable(diags, func(i, j int) bool {
		return diags[i].Subject.Start.Byte < diags[j].Subject.Start.Byte
	})
	return diags
}
