package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/svidagent/svidagent/internal/proc"
)

// modeValue reads a file mode the way spiffe-helper's HCL v1 did, from the
// expression's source text: a number with a leading zero is octal (0644),
// one without is decimal (420), and a string is octal ("0644" or "644").
// HCL2 alone would read 0644 as decimal 644. Values over 0777 are errors;
// a decimal that reads like an intended octal gets a warning.
func modeValue(name string, expr hcl.Expression, src []byte) (uint32, hcl.Diagnostics) {
	rng := expr.Range()
	fix := func(format string, args ...any) (uint32, hcl.Diagnostics) {
		return 0, hcl.Diagnostics{errorf(rng, "Invalid file mode", format, args...)}
	}
	if lit, ok := expr.(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.Number {
		text := strings.TrimSpace(string(rng.SliceBytes(src)))
		if strings.ContainsAny(text, ".eE") {
			return fix("%s = %s is not a whole number; write the mode in octal with a leading zero, for example 0644.", name, text)
		}
		if len(text) > 1 && text[0] == '0' {
			v, err := strconv.ParseUint(text, 8, 32)
			if err != nil {
				return fix("%s = %s is not an octal number (digits 0-7 only); write the mode in octal, for example 0644.", name, text)
			}
			if v > 0o777 {
				return fix("%s = %s is over 0777; use permission bits only, for example 0644.", name, text)
			}
			return uint32(v), nil
		}
		v, err := strconv.ParseUint(text, 10, 32)
		if err != nil {
			return fix("%s = %s is not a file mode; write the mode in octal with a leading zero, for example 0644.", name, text)
		}
		if v > 0o777 {
			return fix("%s = %s is decimal %d, over 0777; write it in octal with a leading zero: 0%s.", name, text, v, text)
		}
		var diags hcl.Diagnostics
		if v != 0 && strings.Trim(text, "01234567") == "" && len(text) == 3 {
			diags = append(diags, warnf(rng, "File mode read as decimal",
				"%s = %s has no leading zero, so it is decimal %d (octal %#o), as spiffe-helper reads it; if you meant octal, write 0%s.", name, text, v, v, text))
		}
		return uint32(v), diags
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return 0, diags
	}
	switch {
	case val.IsNull() || !val.IsKnown():
		return fix("%s has no value; write the mode in octal, for example 0644.", name)
	case val.Type() == cty.String:
		s := strings.TrimSpace(val.AsString())
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0"), 8, 32)
		if s == "0" || s == "00" {
			v, err = 0, nil
		}
		if err != nil || s == "" {
			return fix("%s = %q is not an octal number; write the mode in octal, for example \"0644\" or 0644.", name, s)
		}
		if v > 0o777 {
			return fix("%s = %q is over 0777; use permission bits only, for example \"0644\".", name, s)
		}
		return uint32(v), nil
	case val.Type() == cty.Number:
		bf := val.AsBigFloat()
		if bf.Sign() < 0 {
			return fix("%s must be positive; write the mode in octal with a leading zero, for example 0644.", name)
		}
		return fix("%s must be a number literal such as 0644 or a string such as \"0644\".", name)
	default:
		return fix("%s must be an octal number such as 0644, not %s.", name, val.Type().FriendlyName())
	}
}

// rewriteModes replaces the expression of each attribute of body named in
// modes with the literal modeValue reads, so that gohcl decodes the
// intended mode into the config struct.
func rewriteModes(body *hclsyntax.Body, src []byte, modes map[string]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for name, attr := range body.Attributes {
		if !modes[name] {
			continue
		}
		v, d := modeValue(name, attr.Expr, src)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		attr.Expr = &hclsyntax.LiteralValueExpr{Val: cty.NumberUIntVal(uint64(v)), SrcRange: attr.Expr.Range()}
	}
	return diags
}

// modeFields returns the hcl attribute names of cfg's file modes: integer
// fields whose name ends in "_mode" (files.Config's cert_file_mode, ...).
func modeFields(cfg any) map[string]bool {
	t := reflect.TypeOf(cfg)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	modes := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("hcl"), ",")
		switch f.Type.Kind() {
		case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if strings.HasSuffix(name, "_mode") {
				modes[name] = true
			}
		}
	}
	return modes
}

// durationValue decodes a duration string ("30s", "1m").
func durationValue(attr *hcl.Attribute, allowZero bool) (time.Duration, hcl.Diagnostics) {
	var s string
	if diags := gohcl.DecodeExpression(attr.Expr, nil, &s); diags.HasErrors() {
		return 0, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, hcl.Diagnostics{errorf(attr.Expr.Range(), "Invalid duration",
			"%s = %q is not a duration; write a number with a unit, for example \"30s\", \"5m\" or \"1h30m\".", attr.Name, s)}
	}
	if d < 0 || (d == 0 && !allowZero) {
		return 0, hcl.Diagnostics{errorf(attr.Expr.Range(), "Invalid duration",
			"%s = %q must be positive; write a duration such as \"30s\".", attr.Name, s)}
	}
	return d, nil
}

// decode decodes attr's value into target, which gohcl understands. A
// value of the wrong type is reported with the attribute's name and the
// type wanted.
func decode(attr *hcl.Attribute, target any) hcl.Diagnostics {
	diags := gohcl.DecodeExpression(attr.Expr, nil, target)
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Summary == "Unsuitable value type" {
			d.Detail = fmt.Sprintf("%s: %s; write %s.", attr.Name, strings.TrimSuffix(d.Detail, "."), wantType(reflect.TypeOf(target).Elem()))
		}
	}
	return diags
}

// wantType describes a value of type t for "write ..." hints.
func wantType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return `a quoted string such as "value"`
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number such as 0.5"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return `a list of strings such as ["a", "b"]`
		}
		return "a list"
	}
	return "a value of type " + t.String()
}

// explain completes HCL's diagnostics for unknown keys and values of the
// wrong type in body with how to fix them: the keys that are valid there,
// and the name of the attribute whose value is wrong.
func explain(diags hcl.Diagnostics, body hcl.Body, schema *hcl.BodySchema) hcl.Diagnostics {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		switch d.Summary {
		case "Unsupported argument":
			var names []string
			for _, a := range schema.Attributes {
				names = append(names, a.Name)
			}
			d.Detail += fmt.Sprintf(" Valid arguments here are %s; correct the name or remove the line.", quoteList(names))
		case "Unsupported block type":
			var names []string
			for _, b := range schema.Blocks {
				names = append(names, b.Type)
			}
			d.Detail += fmt.Sprintf(" Valid blocks here are %s; correct the name or remove the block.", quoteList(names))
		case "Unsuitable value type", "Incorrect attribute value type":
			if sb, ok := body.(*hclsyntax.Body); ok && d.Subject != nil {
				for name, a := range sb.Attributes {
					if a.Expr.Range().ContainsOffset(d.Subject.Start.Byte) {
						d.Detail = fmt.Sprintf("%s: %s; write a value of the type the setting takes (see its README).", name, strings.TrimSuffix(d.Detail, "."))
						break
					}
				}
			}
		}
	}
	return diags
}

// checkSignal reports whether name is a signal name, as the native
// notifiers read it (proc.ParseSignal): "SIGHUP", "HUP", "hup", "Sighup".
func checkSignal(attr *hcl.Attribute, name string) hcl.Diagnostics {
	if _, err := proc.ParseSignal(name); err == nil {
		return nil
	}
	guess := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(guess, "SIG") {
		guess = "SIG" + guess
	}
	return hcl.Diagnostics{errorf(attr.Expr.Range(), "Unknown signal",
		"%s = %q is not a signal name.%s Use a name such as \"SIGHUP\", \"SIGUSR1\" or \"SIGTERM\" (the SIG prefix and the case are optional).",
		attr.Name, name, didYouMean(guess, proc.SignalNames()))}
}

// describe names a range for "first defined at" messages.
func describe(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
