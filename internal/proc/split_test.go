package proc_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/internal/proc"
)

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		// The README's examples.
		{name: "readme one argument", in: `"this is one argument"`, want: []string{"this is one argument"}},
		{name: "readme doubled quote", in: `"this is a single argument with ONE double-quote "" in it"`, want: []string{`this is a single argument with ONE double-quote " in it`}},
		{name: "readme single quotes are literal", in: `-c 'echo hello world'`, want: []string{"-c", "'echo", "hello", "world'"}},
		{name: "readme shell", in: `-c "echo hello"`, want: []string{"-c", "echo hello"}},
		{
			name: "readme ghostunnel",
			in:   "server --listen localhost:8002 --target localhost:8001 --keystore certs/svid_key.pem --cacert certs/svid_bundle.pem --allow-uri-san spiffe://example.org/Database",
			want: []string{"server", "--listen", "localhost:8002", "--target", "localhost:8001", "--keystore", "certs/svid_key.pem", "--cacert", "certs/svid_bundle.pem", "--allow-uri-san", "spiffe://example.org/Database"},
		},
		// Edge cases, as encoding/csv with Comma ' ' behaves.
		{name: "empty", in: "", want: []string{}},
		{name: "one", in: "a", want: []string{"a"}},
		{name: "multiple spaces make empty arguments", in: "a  b", want: []string{"a", "", "b"}},
		{name: "leading space", in: " a", want: []string{"", "a"}},
		{name: "trailing space", in: "a ", want: []string{"a", ""}},
		{name: "only a space", in: " ", want: []string{"", ""}},
		{name: "empty quoted", in: `""`, want: []string{""}},
		{name: "only doubled quote", in: `""""`, want: []string{`"`}},
		{name: "doubled quote mid", in: `"a""b" c`, want: []string{`a"b`, "c"}},
		{name: "quoted empty between", in: `a "" b`, want: []string{"a", "", "b"}},
		{name: "tab is not a separator", in: "a\tb", want: []string{"a\tb"}},
		{name: "backslash is literal", in: `a\ b`, want: []string{`a\`, "b"}},
		{name: "quoted line break", in: "\"a\nb\" c", want: []string{"a\nb", "c"}},
		{name: "quoted crlf read as lf", in: "\"a\r\nb\"", want: []string{"a\nb"}},
		{name: "trailing line break", in: "a b\n", want: []string{"a", "b"}},
		{name: "trailing crlf", in: "a b\r\n", want: []string{"a", "b"}},
		{name: "trailing cr dropped", in: "a\r", want: []string{"a"}},
		{name: "inner cr kept", in: "a\rb", want: []string{"a\rb"}},
		{name: "leading empty lines skipped", in: "\n\r\na", want: []string{"a"}},
		{name: "trailing empty lines", in: "a\n\n\n", want: []string{"a"}},
		{name: "single quote does not protect double", in: `'a"b'`, wantErr: true},
		{name: "unterminated quote", in: `"abc`, wantErr: true},
		{name: "unterminated quote with space", in: `a "b c`, wantErr: true},
		{name: "bare quote", in: `a"b`, wantErr: true},
		{name: "text after closing quote", in: `"a"b`, wantErr: true},
		{name: "only line breaks", in: "\n\n", wantErr: true},
		{name: "second line", in: "a\nb", wantErr: true},
		{name: "second line of spaces", in: "a\n ", wantErr: true},
		{name: "second line malformed", in: "a\n\"", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proc.SplitArgs(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("SplitArgs(%q) = %q, want an error", tt.in, got)
				}
				if !strings.HasPrefix(err.Error(), "splitting arguments: ") {
					t.Errorf("error %q lacks its context", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitArgs(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) || got == nil {
				t.Fatalf("SplitArgs(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// The reference model agrees with every row.
			ref, ok := refSplit(tt.in)
			if !ok || !slices.Equal(ref, tt.want) {
				t.Fatalf("refSplit(%q) = %q, %v; want %q", tt.in, ref, ok, tt.want)
			}
		})
	}
}

func FuzzSplitArgs(f *testing.F) {
	for _, s := range []string{
		`"this is one argument"`,
		`"this is a single argument with ONE double-quote "" in it"`,
		`-c 'echo hello world'`,
		"a  b", " a ", `"a""b"`, `"a`, `a"b`, `"a"b`, "\"a\nb\"", "a\r\n", "\n\na", "a\nb", "\r", `"" ""`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := proc.SplitArgs(s)
		want, ok := refSplit(s)
		if (err == nil) != ok {
			t.Fatalf("SplitArgs(%q) = %q, %v; reference model = %q, ok %v", s, got, err, want, ok)
		}
		if ok && !slices.Equal(got, want) {
			t.Fatalf("SplitArgs(%q) = %q; reference model = %q", s, got, want)
		}
	})
}

// refSplit is an independent model of spiffe-helper's cmd_args rules,
// written from the documented behaviour of encoding/csv with Comma ' ',
// one byte at a time. ok is false where SplitArgs must fail.
func refSplit(s string) (args []string, ok bool) {
	if s == "" {
		return []string{}, true
	}
	// Lines are read with "\r\n" as "\n" and a final "\r" dropped.
	var norm []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n':
			// the '\n' is copied next
		case s[i] == '\r' && i+1 == len(s):
			// dropped
		default:
			norm = append(norm, s[i])
		}
	}
	in := string(norm)
	// Empty lines before the record are skipped.
	in = strings.TrimLeft(in, "\n")
	if in == "" {
		return nil, false
	}

	const (
		fieldStart = iota
		unquoted
		quoted
		quoteSeen // a quote inside a quoted field: end or first of ""
	)
	state := fieldStart
	var cur []byte
	emit := func() {
		args = append(args, string(cur))
		cur = cur[:0]
	}
	i, ended := 0, false
record:
	for ; i < len(in); i++ {
		c := in[i]
		switch state {
		case fieldStart:
			switch c {
			case '"':
				state = quoted
			case ' ':
				emit()
			case '\n':
				emit()
				i, ended = i+1, true
				break record
			default:
				cur = append(cur, c)
				state = unquoted
			}
		case unquoted:
			switch c {
			case '"':
				return nil, false
			case ' ':
				emit()
				state = fieldStart
			case '\n':
				emit()
				i, ended = i+1, true
				break record
			default:
				cur = append(cur, c)
			}
		case quoted:
			if c == '"' {
				state = quoteSeen
			} else {
				cur = append(cur, c)
			}
		case quoteSeen:
			switch c {
			case '"':
				cur = append(cur, '"')
				state = quoted
			case ' ':
				emit()
				state = fieldStart
			case '\n':
				emit()
				i, ended = i+1, true
				break record
			default:
				return nil, false
			}
		}
	}
	if !ended {
		// The input ended inside the record.
		if state == quoted {
			return nil, false // unterminated quote
		}
		emit()
		return args, true
	}
	// Only empty lines may follow the record.
	if strings.Trim(in[i:], "\n") != "" {
		return nil, false
	}
	return args, true
}
