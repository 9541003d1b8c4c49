package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

// Runtimes of an external plugin.
const (
	RuntimeWASM    = "wasm"    // a WebAssembly module run by wazero
	RuntimeCommand = "command" // a go-plugin subprocess
)

// Host ceilings of the plugin limits (hostapi/ABI.md §7). A plugin block's
// limits may lower them, never raise them. They equal internal/plugin/wasmrt's,
// which a test in agent checks.
const (
	MaxPluginMemory = 32 << 20
	// DefaultCommandMemory and MaxCommandMemory are the default and the
	// ceiling of a command (go-plugin) plugin's memory limit: the growth
	// of its address space after start (RLIMIT_AS, Linux). A Go plugin
	// reserves address space in 64 MiB arenas and needs far more than a
	// WASM guest's linear memory, so the WASM ceiling cannot serve.
	DefaultCommandMemory = 1 << 30
	MaxCommandMemory     = 16 << 30
	MaxPluginReply       = 4 << 20
	DefaultStartTimeout  = 10 * time.Second
	// MaxWASMStartTimeout is the host ceiling of a WASM plugin's
	// start_timeout (wasmrt.MaxStartTimeout).
	MaxWASMStartTimeout = 10 * time.Second
)

// MaxPluginTimeout returns the ceiling of a plugin call's deadline for
// kind: issuer 30s, writer 5s, notifier 2s.
func MaxPluginTimeout(kind hostapi.Kind) time.Duration {
	switch kind {
	case hostapi.KindIssuer:
		return 30 * time.Second
	case hostapi.KindWriter:
		return 5 * time.Second
	}
	return 2 * time.Second
}

// External is a plugin "name" { ... } block: one external plugin
// instance, shared by every issuer, writer or notifier that names it.
type External struct {
	// Name is the block's label.
	Name string `json:"name"`
	// Kind is what the references use it as; empty when nothing
	// references it (it is then not loaded).
	Kind hostapi.Kind `json:"kind"`
	// Runtime is RuntimeWASM or RuntimeCommand.
	Runtime string `json:"runtime"`
	// Path is the .wasm module or the executable, resolved against the
	// config file's directory.
	Path string `json:"path"`
	// SHA256 is the lowercase hex sha256 the file must have. Required
	// unless InsecureSkipChecksum.
	SHA256 string `json:"sha256,omitempty"`
	// InsecureSkipChecksum skips the pin, for development; the agent logs
	// a warning at every start. Default: false.
	InsecureSkipChecksum bool `json:"insecure_skip_checksum,omitempty"`
	// StartTimeout bounds the plugin's start: a command plugin's exec and
	// handshake, a WASM plugin's instantiation, _initialize and the replay
	// of Describe and Configure (also of a fresh instance after a trap).
	// Default: 10s, which is also the ceiling for a WASM plugin.
	StartTimeout time.Duration `json:"start_timeout,omitempty"`
	// ConfigJSON is the config {} block, as JSON. Default: {}.
	ConfigJSON json.RawMessage `json:"config"`
	// Limits lower the host ceilings.
	Limits Limits `json:"limits"`
	// AllowHosts grants a notifier the HTTP host service for these hosts.
	AllowHosts []string `json:"allow_hosts,omitempty"`
	// WriteDir is preopened as a WASM writer's /out, resolved against the
	// config file's directory.
	WriteDir string `json:"write_dir,omitempty"`

	// FieldRanges maps a config {} field, dot separated when nested
	// ("url", "headers.authorization"), to where it is written, so that
	// the plugin's own Validate problems point at file:line:col.
	FieldRanges map[string]hcl.Range `json:"-"`
	// ConfigRange is the config block's (or, without one, the plugin
	// block's) range, for problems with no field.
	ConfigRange hcl.Range `json:"-"`
	// DeclRange is where the plugin block was declared.
	DeclRange hcl.Range `json:"-"`
}

// Limits lower the host ceilings of one plugin; zero takes the ceiling.
type Limits struct {
	// MemoryBytes caps a WASM plugin's linear memory (ceiling 32 MiB) or
	// the address-space growth of a command plugin after its start
	// (default [DefaultCommandMemory], ceiling [MaxCommandMemory]).
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	// Timeout is each call's deadline. Ceiling: [MaxPluginTimeout].
	Timeout time.Duration `json:"timeout,omitempty"`
	// MaxReplyBytes caps a reply. Ceiling: 4 MiB.
	MaxReplyBytes int `json:"max_reply_bytes,omitempty"`
}

// Subject returns where field (as the plugin names it in a FieldError) is
// written: the longest dotted prefix of field that has a range, or the
// config block.
func (e *External) Subject(field string) (hcl.Range, bool) {
	for f := field; f != ""; {
		if r, ok := e.FieldRanges[f]; ok {
			return r, true
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return e.ConfigRange, false
}

// FieldDiagnostics maps a plugin's Validate problems onto the source of
// its config {} block.
func (e *External) FieldDiagnostics(fes hostapi.FieldErrors) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, fe := range fes {
		subject, found := e.Subject(fe.Field)
		msg := fe.Message
		if !found && fe.Field != "" {
			msg = fe.Field + ": " + msg
		}
		summary := fmt.Sprintf("Invalid %s plugin setting", e.Name)
		if fe.Field != "" {
			summary += " " + fe.Field
		}
		diags = append(diags, errorf(subject, summary, "%s", msg))
	}
	sortDiags(diags)
	return diags
}

var pluginSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "wasm"}, {Name: "command"}, {Name: "sha256"}, {Name: "insecure_skip_checksum"}, {Name: "start_timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "config"}, {Type: "limits"}, {Type: "allow"}},
}

var limitsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "memory"}, {Name: "timeout"}, {Name: "max_reply"}}}

var allowSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "hosts"}, {Name: "write_dir"}}}

// IsSHA256Hex reports whether s is a sha256 as `svidagent plugin hash`
// prints it: 64 lowercase hex digits.
func IsSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// limitRanges remembers where each limit was written, to check it against
// the kind's ceiling once the references are known.
type externalDecl struct {
	ext          *External
	timeoutRange *hcl.Range
	hostsRange   *hcl.Range
	writeRange   *hcl.Range
	kindRange    hcl.Range // the first reference
}

// decodeExternal decodes a plugin block.
func decodeExternal(b *hcl.Block, filename string) (*externalDecl, hcl.Diagnostics) {
	name := b.Labels[0]
	e := &External{Name: name, ConfigJSON: json.RawMessage("{}"), FieldRanges: map[string]hcl.Range{}, DeclRange: b.DefRange, ConfigRange: b.DefRange}
	d := &externalDecl{ext: e}
	content, diags := b.Body.Content(pluginSchema)
	diags = explain(diags, b.Body, pluginSchema)
	if diags.HasErrors() {
		return d, diags
	}
	if builtin := builtinKinds(name); len(builtin) > 0 {
		diags = append(diags, errorf(b.LabelRanges[0], "Plugin name taken by a built-in",
			"plugin %q has the name of the built-in %s type %q, so references to it would be ambiguous; rename the plugin block, for example plugin \"%s-plugin\".", name, strings.Join(builtin, " and "), name, name))
	}
	at := content.Attributes
	wasm, hasWasm := at["wasm"]
	command, hasCommand := at["command"]
	switch {
	case hasWasm && hasCommand:
		diags = append(diags, errorf(command.NameRange, "Two plugin runtimes",
			"plugin %q sets both wasm (at %s) and command; a plugin is either a WebAssembly module (wasm = \"x.wasm\") or a subprocess (command = \"path\"): remove one.", name, describe(wasm.NameRange)))
	case !hasWasm && !hasCommand:
		diags = append(diags, errorf(b.DefRange, "No plugin runtime",
			"plugin %q says neither where its module is nor which command to run; add wasm = \"plugins/%s.wasm\" for a WebAssembly module or command = \"plugins/%s\" for a subprocess plugin.", name, name, name))
	case hasWasm:
		e.Runtime = RuntimeWASM
		diags = append(diags, decodePath(wasm, filename, &e.Path)...)
	default:
		e.Runtime = RuntimeCommand
		diags = append(diags, decodePath(command, filename, &e.Path)...)
	}
	if a, ok := at["insecure_skip_checksum"]; ok {
		diags = append(diags, decode(a, &e.InsecureSkipChecksum)...)
	}
	if a, ok := at["sha256"]; ok {
		if ds := decode(a, &e.SHA256); ds.HasErrors() {
			diags = append(diags, ds...)
		} else if e.SHA256 = strings.ToLower(e.SHA256); !IsSHA256Hex(e.SHA256) {
			diags = append(diags, errorf(a.Expr.Range(), "Invalid sha256",
				"sha256 = %q is not a sha256 in hex (64 characters 0-9, a-f); print the file's with `svidagent plugin hash %s`.", e.SHA256, e.Path))
		}
	} else if !e.InsecureSkipChecksum && e.Path != "" {
		diags = append(diags, errorf(b.DefRange, "Missing sha256",
			"plugin %q has no sha256, which pins the exact file that runs; add sha256 = \"<hex>\" with the output of `svidagent plugin hash %s` (or, for development only, insecure_skip_checksum = true).", name, e.Path))
	}
	if a, ok := at["start_timeout"]; ok {
		t, ds := durationValue(a, false)
		diags = append(diags, ds...)
		if !ds.HasErrors() && e.Runtime == RuntimeWASM && t > MaxWASMStartTimeout {
			diags = append(diags, errorf(a.Expr.Range(), "Limit above the ceiling",
				"start_timeout = %q raises the host ceiling of %s for a WebAssembly plugin's start (instantiation, _initialize, Describe and Configure); write at most %q, or remove the line.", t, MaxWASMStartTimeout, MaxWASMStartTimeout.String()))
		}
		e.StartTimeout = t
	} else {
		e.StartTimeout = DefaultStartTimeout
	}
	seen := map[string]hcl.Range{}
	for _, blk := range content.Blocks {
		if prev, dup := seen[blk.Type]; dup {
			diags = append(diags, errorf(blk.DefRange, "Duplicate "+blk.Type+" block",
				"plugin %q already has a %s block at %s; merge the two.", name, blk.Type, describe(prev)))
			continue
		}
		seen[blk.Type] = blk.DefRange
		switch blk.Type {
		case "config":
			e.ConfigRange = blk.DefRange
			js, ds := bodyJSON(blk.Body, "", e.FieldRanges)
			diags = append(diags, ds...)
			if !ds.HasErrors() {
				e.ConfigJSON = js
			}
		case "limits":
			diags = append(diags, decodeLimits(blk, d)...)
		case "allow":
			c, ds := blk.Body.Content(allowSchema)
			diags = append(diags, explain(ds, blk.Body, allowSchema)...)
			if ds.HasErrors() {
				continue
			}
			if a, ok := c.Attributes["hosts"]; ok {
				diags = append(diags, decode(a, &e.AllowHosts)...)
				d.hostsRange = a.NameRange.Ptr()
			}
			if a, ok := c.Attributes["write_dir"]; ok {
				diags = append(diags, decodePath(a, filename, &e.WriteDir)...)
				d.writeRange = a.NameRange.Ptr()
			}
		}
	}
	return d, diags
}

// builtinKinds returns the kinds that have a built-in type named name.
func builtinKinds(name string) []string {
	var kinds []string
	for _, k := range []hostapi.Kind{hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier} {
		if _, ok := registry.Lookup(k, name); ok {
			kinds = append(kinds, string(k))
		}
	}
	return kinds
}

func decodePath(a *hcl.Attribute, filename string, dst *string) hcl.Diagnostics {
	var p string
	if d := decode(a, &p); d.HasErrors() {
		return d
	}
	if p == "" {
		return hcl.Diagnostics{errorf(a.Expr.Range(), "Empty path", "%s is empty; write a path, relative to the config file's directory or absolute.", a.Name)}
	}
	*dst = resolvePath(p, filename)
	return nil
}

// resolvePath resolves a relative path against the config file's
// directory.
func resolvePath(p, filename string) string {
	if filepath.IsAbs(p) || filename == "" {
		return p
	}
	return filepath.Join(filepath.Dir(filename), p)
}

func decodeLimits(b *hcl.Block, d *externalDecl) hcl.Diagnostics {
	c, diags := b.Body.Content(limitsSchema)
	diags = explain(diags, b.Body, limitsSchema)
	if diags.HasErrors() {
		return diags
	}
	if a, ok := c.Attributes["memory"]; ok {
		n, ds := sizeValue(a)
		diags = append(diags, ds...)
		ceiling, what := uint64(MaxPluginMemory), "a WASM plugin's linear memory"
		if d.ext.Runtime == RuntimeCommand {
			ceiling, what = MaxCommandMemory, "a command plugin's memory"
		}
		if !ds.HasErrors() && n > ceiling {
			diags = append(diags, errorf(a.Expr.Range(), "Limit above the ceiling",
				"memory = %s raises the host ceiling of %s for %s; limits may only lower it: write at most %q, or remove the line.", formatSize(n), formatSize(ceiling), what, formatSize(ceiling)))
		}
		d.ext.Limits.MemoryBytes = n
	}
	if a, ok := c.Attributes["max_reply"]; ok {
		n, ds := sizeValue(a)
		diags = append(diags, ds...)
		if !ds.HasErrors() && n > MaxPluginReply {
			diags = append(diags, errorf(a.Expr.Range(), "Limit above the ceiling",
				"max_reply = %s raises the host ceiling of 4MiB; limits may only lower it: write at most \"4MiB\", or remove the line.", formatSize(n)))
		}
		d.ext.Limits.MaxReplyBytes = int(n)
	}
	if a, ok := c.Attributes["timeout"]; ok {
		t, ds := durationValue(a, false)
		diags = append(diags, ds...)
		d.ext.Limits.Timeout = t
		d.timeoutRange = a.Expr.Range().Ptr()
	}
	return diags
}

// sizePattern is compiled on first use: a config without sizes (every
// helper.conf) does not pay for it at start.
var sizePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*([0-9]+)\s*([KMG]i?B?|B)?\s*$`)
})

// sizeValue decodes a byte size: a whole number of bytes, or a string
// with a unit: "512KiB", "16MiB", "1GiB" (powers of 1024) or "16MB"
// (powers of 1000).
func sizeValue(a *hcl.Attribute) (uint64, hcl.Diagnostics) {
	bad := func(v string) (uint64, hcl.Diagnostics) {
		return 0, hcl.Diagnostics{errorf(a.Expr.Range(), "Invalid size",
			"%s = %s is not a size; write a number of bytes with a unit, for example \"16MiB\" or \"512KiB\".", a.Name, v)}
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return 0, diags
	}
	var s string
	switch {
	case v.IsNull() || !v.IsKnown():
		return bad("null")
	case v.Type() == cty.Number:
		bf := v.AsBigFloat()
		if !bf.IsInt() || bf.Sign() <= 0 {
			return bad(bf.String())
		}
		n, _ := bf.Uint64()
		return n, nil
	case v.Type() == cty.String:
		s = v.AsString()
	default:
		return bad(v.Type().FriendlyName())
	}
	m := sizePattern().FindStringSubmatch(s)
	if m == nil {
		return bad(strconv.Quote(s))
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil || n == 0 {
		return bad(strconv.Quote(s))
	}
	unit := strings.TrimSuffix(m[2], "B")
	mult := map[string]uint64{"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[unit]
	return n * mult, nil
}

func formatSize(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// bodyJSON converts a config {} body to a JSON object: attributes become
// members (objects and lists allowed), nested blocks become objects (an
// array of objects when the type repeats). ranges gets each field's range
// under its dotted name.
func bodyJSON(body hcl.Body, prefix string, ranges map[string]hcl.Range) (json.RawMessage, hcl.Diagnostics) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return json.RawMessage("{}"), nil
	}
	var diags hcl.Diagnostics
	obj := map[string]json.RawMessage{}
	for name, a := range sb.Attributes {
		v, ds := a.Expr.Value(nil)
		if ds.HasErrors() {
			diags = append(diags, ds...)
			continue
		}
		if !v.IsWhollyKnown() {
			diags = append(diags, errorf(a.Expr.Range(), "Unknown value", "%s has no known value; write a literal value.", name))
			continue
		}
		js, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			diags = append(diags, errorf(a.Expr.Range(), "Unsupported value", "%s cannot be passed to the plugin as JSON (%s); write a string, number, bool, list or object.", name, err))
			continue
		}
		obj[name] = js
		ranges[prefix+name] = a.SrcRange
	}
	blocks := map[string][]json.RawMessage{}
	var order []string
	for _, blk := range sb.Blocks {
		name := blk.Type
		if _, dup := obj[name]; dup {
			diags = append(diags, errorf(blk.DefRange(), "Duplicate config field", "%s is set as an attribute and as a block; keep one.", name))
			continue
		}
		js, ds := bodyJSON(blk.Body, prefix+name+".", ranges)
		diags = append(diags, ds...)
		if _, seen := blocks[name]; !seen {
			order = append(order, name)
			ranges[prefix+name] = blk.DefRange()
		}
		blocks[name] = append(blocks[name], js)
	}
	for _, name := range order {
		if bs := blocks[name]; len(bs) == 1 {
			obj[name] = bs[0]
		} else {
			obj[name], _ = json.Marshal(bs)
		}
	}
	out, err := json.Marshal(obj) // keys sorted: stable
	if err != nil {
		diags = append(diags, errorf(sb.SrcRange, "Unsupported config", "the config block cannot be encoded as JSON: %s.", err))
	}
	return out, diags
}

// externals resolves references to plugin blocks.
type externals struct {
	decls map[string]*externalDecl
	names []string
}

// lookup returns the plugin block named name, recording that it is used
// as kind at rng; a second kind is an error.
func (x *externals) use(name string, kind hostapi.Kind, rng hcl.Range) (*External, hcl.Diagnostics) {
	d, ok := x.decls[name]
	if !ok {
		return nil, nil
	}
	if d.ext.Kind == "" {
		d.ext.Kind, d.kindRange = kind, rng
		return d.ext, nil
	}
	if d.ext.Kind != kind {
		return d.ext, hcl.Diagnostics{errorf(rng, "Plugin used as two kinds",
			"plugin %q is used as a %s at %s and as a %s here; a plugin block is one instance of one kind: reference it as a %s only, or add a second plugin block for the %s.",
			name, d.ext.Kind, describe(d.kindRange), kind, d.ext.Kind, kind)}
	}
	return d.ext, nil
}

// check checks what depends on the kind: the timeout ceiling and the
// grants that only one kind can use.
func (x *externals) check() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, name := range x.names {
		d := x.decls[name]
		e := d.ext
		if e.Kind == "" {
			diags = append(diags, warnf(e.DeclRange, "Unused plugin",
				"plugin %q is not referenced by any issuer, writer or notifier, so it is not loaded; reference it, or remove the block.", name))
			continue
		}
		if ceiling := MaxPluginTimeout(e.Kind); d.timeoutRange != nil && e.Limits.Timeout > ceiling {
			diags = append(diags, errorf(*d.timeoutRange, "Limit above the ceiling",
				"timeout = %q raises the host ceiling of %s for a %s; limits may only lower it: write at most %q, or remove the line.", e.Limits.Timeout, ceiling, e.Kind, ceiling.String()))
		}
		if d.hostsRange != nil && e.Kind != hostapi.KindNotifier {
			diags = append(diags, errorf(*d.hostsRange, "HTTP for a "+string(e.Kind),
				"allow { hosts } grants the HTTP host service, which only notifiers get; plugin %q is a %s: remove hosts.", name, e.Kind))
		}
		if d.writeRange != nil && (e.Kind != hostapi.KindWriter || e.Runtime != RuntimeWASM) {
			diags = append(diags, errorf(*d.writeRange, "write_dir for a non-WASM-writer",
				"allow { write_dir } preopens a WASM writer's /out; plugin %q is a %s %s plugin: remove write_dir.", name, e.Runtime, e.Kind))
		}
	}
	return diags
}

// list returns the plugin blocks in file order.
func (x *externals) list() []*External {
	var out []*External
	for _, n := range x.names {
		out = append(out, x.decls[n].ext)
	}
	return out
}

// pluginRefNames are the plugin block names, for "did you mean".
func (x *externals) refNames() []string {
	names := slices.Clone(x.names)
	sort.Strings(names)
	return names
}

// DefaultStateDir returns the state directory used when the config sets
// none: $STATE_DIRECTORY (systemd's StateDirectory=) if set, else
// /var/lib/svidagent when running as root, else
// $XDG_STATE_HOME/svidagent, else ~/.local/state/svidagent.
func DefaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		// systemd separates several directories with colons.
		first, _, _ := strings.Cut(d, ":")
		return first
	}
	if os.Geteuid() == 0 {
		return "/var/lib/svidagent"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "svidagent")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "svidagent")
	}
	return filepath.Join(os.TempDir(), "svidagent-state")
}
