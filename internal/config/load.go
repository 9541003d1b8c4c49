package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Load reads path and returns its configuration, detecting the format: a
// file with any issuer or svid block is agent.hcl, any other is
// spiffe-helper's helper.conf. A configuration problem is returned as
// hcl.Diagnostics, each pointing at file:line:col; render it with
// [FormatError].
func Load(path string) (*Config, error) {
	src, tooLarge, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if tooLarge != nil {
		return nil, hcl.Diagnostics{tooLarge}
	}
	cfg, err := Parse(src, path)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	return cfg, nil
}

// Parse parses src, named filename in messages; see [Load]. A file over
// the limits (MaxFileSize, MaxNesting, MaxChain) is refused before HCL
// parses it, and a panic while parsing becomes an error: no input takes
// the caller down.
func Parse(src []byte, filename string) (cfg *Config, err error) {
	if diags := checkLimits(src, filename); diags.HasErrors() {
		return nil, diags
	}
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, hcl.Diagnostics{errorf(fileStart(filename), "Configuration not understood",
				"reading the file failed unexpectedly (%v); please report it, with the file. Until then, simplify the file around the last change.", r)}
		}
	}()
	cfg, diags := parse(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg.Warnings = diags
	return cfg, nil
}

func parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		return nil, append(diags, errorf(fileStart(filename), "Unsupported configuration syntax", "the configuration must be written in HCL native syntax."))
	}
	format, d := detect(body, filename)
	diags = append(diags, d...)
	if d.HasErrors() {
		return nil, diags
	}
	var cfg *Config
	switch format {
	case FormatNative:
		cfg, d = parseNative(body, src, filename)
	default:
		cfg, d = parseHelper(body, src, filename)
	}
	diags = append(diags, d...)
	sortDiags(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// nativeBlocks mark a file as agent.hcl.
var nativeBlocks = map[string]bool{"issuer": true, "svid": true, "plugin": true}

// helperOnly are helper.conf's keys that agent.hcl does not have, with
// where their meaning lives in agent.hcl.
var helperOnly = map[string]string{
	"agent_address":               `issuer "workloadapi" { address = ... }`,
	"cmd":                         `notifier "exec" { cmd = ... } in a svid block`,
	"cmd_args":                    `notifier "exec" { args = ... } in a svid block`,
	"pid_file_name":               `notifier "signal" { pid_file = ... } in a svid block`,
	"cert_dir":                    `writer "files" { dir = ... } in a svid block`,
	"add_intermediates_to_bundle": `writer "files" { add_intermediates_to_bundle = ... }`,
	"renew_signal":                `the signal attribute of a notifier "exec" or "signal" block`,
	"svid_file_name":              `writer "files" { svid_file_name = ... }`,
	"svid_key_file_name":          `writer "files" { svid_key_file_name = ... }`,
	"svid_bundle_file_name":       `writer "files" { svid_bundle_file_name = ... }`,
	"jwt_svids":                   `jwt { audience = ... file_name = ... } blocks in a svid block`,
	"jwt_bundle_file_name":        `writer "files" { jwt_bundle_file_name = ... }`,
	"include_federated_domains":   `writer "files" { include_federated_domains = ... }`,
	"omit_expired":                `writer "files" { omit_expired = ... }`,
	"cert_file_mode":              `writer "files" { cert_file_mode = ... }`,
	"key_file_mode":               `writer "files" { key_file_mode = ... }`,
	"jwt_bundle_file_mode":        `writer "files" { jwt_bundle_file_mode = ... }`,
	"jwt_svid_file_mode":          `writer "files" { jwt_svid_file_mode = ... }`,
	"hint":                        `svid "..." { hint = ... }`,
	"health_checks":               `health { enabled = ... address = ... }`,
	"log_level":                   `the agent's -log-level flag`,
}

// detect returns the format of body: native when it has an issuer or svid
// block. A native file with helper.conf keys is an error.
func detect(body *hclsyntax.Body, filename string) (Format, hcl.Diagnostics) {
	var first *hclsyntax.Block
	for _, b := range body.Blocks {
		if nativeBlocks[b.Type] {
			first = b
			break
		}
	}
	if first == nil {
		return FormatSPIFFEHelper, nil
	}
	var diags hcl.Diagnostics
	mixed := func(name string, rng hcl.Range) {
		diags = append(diags, errorf(rng, "Mixed configuration formats",
			"%q is a spiffe-helper (helper.conf) key, but this file is an agent.hcl (it has an %s block at %s). In agent.hcl write it as %s; or remove the issuer and svid blocks to keep the file in helper.conf format.",
			name, first.Type, describe(first.DefRange()), helperOnly[name]))
	}
	for name, a := range body.Attributes {
		if _, ok := helperOnly[name]; ok {
			mixed(name, a.NameRange)
		}
	}
	for _, b := range body.Blocks {
		if _, ok := helperOnly[b.Type]; ok {
			mixed(b.Type, b.TypeRange)
		}
	}
	sortDiags(diags)
	return FormatNative, diags
}

// sortDiags orders diags by position, for stable output; those without a
// subject keep their place at the front. It is a stable sort, in
// O(n log n): a file with thousands of errors is reported at once.
func sortDiags(diags hcl.Diagnostics) {
	pos := func(d *hcl.Diagnostic) int {
		if d.Subject == nil {
			return -1
		}
		return d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(i, j int) bool { return pos(diags[i]) < pos(diags[j]) })
}
