package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// maxFileName is the longest file name Linux (and most file systems)
// accept, in bytes.
const maxFileName = 255

// checkFileName returns why name cannot be a file in an output directory,
// or "": it must be a plain name, not a path.
func checkFileName(name string) string {
	switch {
	case name == "":
		return "file name is empty; use a plain file name such as \"api.token\""
	case strings.ContainsAny(name, `/\`):
		return fmt.Sprintf("file name %q contains a path separator; use a plain file name: the file is written in the writer's dir", name)
	case name == "." || name == "..":
		return fmt.Sprintf("file name %q is not a file; use a plain file name such as \"api.token\"", name)
	case strings.HasPrefix(name, ".."):
		return fmt.Sprintf("file name %q starts with \"..\", which is reserved for the data layout's internal entries; rename it", name)
	case strings.ContainsRune(name, 0):
		return fmt.Sprintf("file name %q contains a NUL byte; use a plain file name", name)
	case len(name) > maxFileName:
		return fmt.Sprintf("file name %.20q... is %d bytes; the limit is %d; use a shorter name", name, len(name), maxFileName)
	}
	return ""
}

// fileNameDiag returns an error at attr when name is no plain file name.
func fileNameDiag(attr *hcl.Attribute, name string) hcl.Diagnostics {
	msg := checkFileName(name)
	if msg == "" {
		return nil
	}
	return hcl.Diagnostics{errorf(attr.Expr.Range(), "Invalid file name", "%s: %s.", attr.Name, msg)}
}

// checkOutputs checks what a writer's config says about its files beyond
// the writer's own Validate, by the hcl names of its fields: a
// "*_file_name" over 255 bytes is an error, a "dir" that exists as a
// regular file (or lies under one) is an error, and a "key_file_mode" that lets the world in,
// or the group write, is a warning (0640, for a group that reads the key,
// is the documented deployment and does not warn). rename maps field names to the attribute names of
// body (helper.conf's keys differ); a field set by default points at
// fallback.
func checkOutputs(cfg any, body *hclsyntax.Body, rename map[string]string, fallback hcl.Range) hcl.Diagnostics {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var diags hcl.Diagnostics
	for i := 0; i < v.NumField(); i++ {
		field, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("hcl"), ",")
		attr := field
		if r, ok := rename[field]; ok {
			attr = r
		}
		subject := fallback
		if a, ok := body.Attributes[attr]; ok {
			subject = a.Expr.Range()
		}
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.String && strings.HasSuffix(field, "_file_name") && len(f.String()) > maxFileName:
			diags = append(diags, errorf(subject, "Invalid file name", "%s: %s.", attr, checkFileName(f.String())))
		case f.Kind() == reflect.String && field == "dir" && f.String() != "":
			fi, err := os.Stat(f.String())
			switch {
			case err == nil && !fi.IsDir():
				diags = append(diags, errorf(subject, "Invalid output directory",
					"%s = %q is a regular file, not a directory; point %s at a directory (it is created when missing), or move the file away.", attr, f.String(), attr))
			case errors.Is(err, syscall.ENOTDIR):
				diags = append(diags, errorf(subject, "Invalid output directory",
					"%s = %q lies under a regular file, so it can never be created; point %s at a directory.", attr, f.String(), attr))
			}
		case f.CanUint() && field == "key_file_mode" && f.Uint()&0o037 != 0:
			diags = append(diags, warnf(subject, "Private key readable by others",
				"%s = %#o lets other users read or change the private key; use 0600 (0640 for a group that must read it), or leave it out for the default.", attr, f.Uint()))
		}
	}
	return diags
}
