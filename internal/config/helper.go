package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

// helper.conf: spiffe-helper's keys, read with HCL v1's meanings (see
// SCHEMA.md) and mapped onto the native model: one workloadapi issuer, one
// svid "default", one files writer, and exec/signal notifiers.

const (
	helperIssuer = "workloadapi"
	helperSVID   = "default"
)

var helperSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "agent_address"}, {Name: "cmd"}, {Name: "cmd_args"},
		{Name: "pid_file_name"}, {Name: "cert_dir"}, {Name: "daemon_mode"},
		{Name: "add_intermediates_to_bundle"}, {Name: "renew_signal"},
		{Name: "svid_file_name"}, {Name: "svid_key_file_name"},
		{Name: "svid_bundle_file_name"}, {Name: "jwt_bundle_file_name"},
		{Name: "include_federated_domains"}, {Name: "omit_expired"},
		{Name: "cert_file_mode"}, {Name: "key_file_mode"},
		{Name: "jwt_bundle_file_mode"}, {Name: "jwt_svid_file_mode"},
		{Name: "hint"}, {Name: "log_level"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "jwt_svids"}, {Type: "health_checks"}},
}

var jwtSVIDSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "jwt_audience"}, {Name: "jwt_extra_audiences"}, {Name: "jwt_svid_file_name"},
	},
}

var healthChecksSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listener_enabled"}, {Name: "bind_port"}, {Name: "liveness_path"}, {Name: "readiness_path"},
	},
}

// logLevels are logrus's levels, which spiffe-helper's log_level takes.
var logLevels = []string{"panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"}

// helperRename maps files.Config's field names to helper.conf's keys, for
// the writer's Validate errors.
var helperRename = map[string]string{"dir": "cert_dir"}

func parseHelper(body *hclsyntax.Body, src []byte, filename string) (cfg *Config, diags hcl.Diagnostics) {
	// Unknown keys are reported with the rest: they must not hide the
	// value errors elsewhere in the file.
	var unknown hcl.Diagnostics
	defer func() {
		if unknown.HasErrors() {
			cfg, diags = nil, append(unknown, diags...)
		}
	}()
	diags = attrsToBlocks(body, "jwt_svids", true)
	diags = append(diags, attrsToBlocks(body, "health_checks", false)...)
	if diags.HasErrors() {
		return nil, diags
	}
	helperModes := map[string]bool{"cert_file_mode": true, "key_file_mode": true, "jwt_bundle_file_mode": true, "jwt_svid_file_mode": true}
	for name := range helperModes {
		if a, ok := body.Attributes[name]; ok {
			// Checked before rewriting: HCL v1 reads -1 as a number, and
			// spiffe-helper says the mode must be positive.
			if u, ok := a.Expr.(*hclsyntax.UnaryOpExpr); ok && u.Op == hclsyntax.OpNegate {
				diags = append(diags, errorf(a.Expr.Range(), "Invalid file mode",
					"%s must be positive; write the mode in octal with a leading zero, for example 0644, or leave it out for the default.", name))
				delete(body.Attributes, name)
			}
		}
	}
	diags = append(diags, rewriteModes(body, src, helperModes)...)
	content, unknown := body.Content(helperSchema)
	unknown = explain(unknown, body, helperSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs := content.Attributes
	str := func(name string) string {
		var s string
		if a, ok := attrs[name]; ok {
			diags = append(diags, decode(a, &s)...)
		}
		return s
	}
	boolean := func(name string, def bool) bool {
		v := def
		if a, ok := attrs[name]; ok {
			diags = append(diags, decode(a, &v)...)
		}
		return v
	}
	mode := func(name string) uint32 {
		var v uint32
		if a, ok := attrs[name]; ok {
			diags = append(diags, decode(a, &v)...)
		}
		return v
	}

	// The writer's config as a native files block would set it: only what
	// the file gives, so the module's defaults (modes, names) stay.
	fattrs := map[string]any{"dir": str("cert_dir"), "layout": "flat"}
	for _, k := range []string{"svid_file_name", "svid_key_file_name", "svid_bundle_file_name", "jwt_bundle_file_name"} {
		if v := str(k); v != "" {
			fattrs[k] = v
		}
	}
	for _, k := range []string{"add_intermediates_to_bundle", "include_federated_domains", "omit_expired"} {
		fattrs[k] = boolean(k, false)
	}
	for _, k := range []string{"cert_file_mode", "key_file_mode", "jwt_bundle_file_mode", "jwt_svid_file_mode"} {
		if v := mode(k); v != 0 { // spiffe-helper: 0 (or unset) is the default
			fattrs[k] = v
		}
	}
	if fattrs["dir"] == "" {
		// spiffe-helper joins the file names to an empty cert_dir: the
		// working directory.
		fattrs["dir"] = "."
	}
	jwtBundles := str("jwt_bundle_file_name") != ""
	fc, err := builtinConfig(hostapi.KindWriter, "files", fattrs)
	if err != nil {
		return nil, append(diags, errorf(fileStart(filename), "Built-in missing", "%v", err))
	}
	issuerCfg, err := builtinConfig(hostapi.KindIssuer, "workloadapi", map[string]any{"address": str("agent_address")})
	if err != nil {
		return nil, append(diags, errorf(fileStart(filename), "Built-in missing", "%v", err))
	}
	cfg = &Config{
		Format:       FormatSPIFFEHelper,
		DaemonMode:   boolean("daemon_mode", true),
		FetchTimeout: DefaultFetchTimeout,
		LogLevel:     strings.ToLower(str("log_level")),
		Issuers: []Plugin{{
			Name:      helperIssuer,
			Type:      "workloadapi",
			Config:    issuerCfg,
			DeclRange: fileStart(filename),
		}},
	}
	cmd, cmdArgs := str("cmd"), str("cmd_args")
	pidFile, renewSignal := str("pid_file_name"), str("renew_signal")
	hint := str("hint")
	if diags.HasErrors() {
		return nil, diags
	}

	if a, ok := attrs["log_level"]; ok && !contains(logLevels, cfg.LogLevel) {
		diags = append(diags, errorf(a.Expr.Range(), "Invalid log level",
			"log_level = %q is not a level.%s Use one of %s.", cfg.LogLevel, didYouMean(cfg.LogLevel, logLevels), quoteList(logLevels)))
	}
	if a, ok := attrs["renew_signal"]; ok && renewSignal != "" {
		diags = append(diags, checkSignal(a, renewSignal)...)
	}
	if a, ok := attrs["pid_file_name"]; ok && pidFile != "" {
		if !cfg.DaemonMode {
			diags = append(diags, errorf(a.Range, "pid_file_name needs daemon mode",
				"pid_file_name is set but daemon_mode is false, and a one-shot fetch signals nothing (as in spiffe-helper); remove pid_file_name or set daemon_mode = true."))
		}
		if renewSignal == "" {
			diags = append(diags, errorf(a.Range, "Missing renew_signal",
				"pid_file_name is set but renew_signal is not, so there is no signal to send; add renew_signal = \"SIGHUP\" (or the signal the process reloads on)."))
		}
	}

	// X.509: spiffe-helper writes X.509 only when all three names are set.
	names := []string{"svid_file_name", "svid_key_file_name", "svid_bundle_file_name"}
	var set, unset []string
	for _, n := range names {
		if str(n) != "" {
			set = append(set, n)
		} else {
			unset = append(unset, n)
		}
	}
	x509 := len(unset) == 0
	if len(set) > 0 && len(unset) > 0 {
		diags = append(diags, errorf(attrs[set[0]].Range, "Incomplete X.509 file names",
			"all or none of svid_file_name, svid_key_file_name and svid_bundle_file_name must be set (as in spiffe-helper); add %s, or remove %s.", strings.Join(unset, " and "), strings.Join(set, " and ")))
	}

	// JWT-SVIDs.
	var jwts []hostapi.JWTRequest
	var health *hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "health_checks":
			if health != nil {
				diags = append(diags, errorf(b.DefRange, "Duplicate health_checks",
					"health_checks is already defined at %s; merge the two into one.", describe(health.DefRange)))
				continue
			}
			health = b
		case "jwt_svids":
			r, d := helperJWT(b)
			diags = append(diags, d...)
			if !d.HasErrors() {
				jwts = append(jwts, r)
			}
		}
	}
	diags = append(diags, checkJWTFileNames(jwts, content.Blocks, "jwt_svid_file_name")...)

	if len(set) == 0 && len(jwts) == 0 && !jwtBundles && !diags.HasErrors() {
		diags = append(diags, errorf(fileStart(filename), "Nothing to fetch",
			"set svid_file_name, svid_key_file_name and svid_bundle_file_name (X.509), jwt_svids, or jwt_bundle_file_name; with none of them spiffe-helper and svidagent have nothing to deliver."))
	}
	svid := SVID{
		Name:          helperSVID,
		Issuer:        helperIssuer,
		Hint:          hint,
		X509:          x509,
		JWT:           jwts,
		JWTBundles:    jwtBundles,
		RenewFraction: DefaultRenewFraction,
		Writers:       []Plugin{{Name: "files", Type: "files", Config: fc, DeclRange: fileStart(filename)}},
		Notifiers:     []Notifier{},
		DeclRange:     fileStart(filename),
	}
	if !diags.HasErrors() {
		diags = append(diags, validatePlugin(fc, "files writer setting", body, helperRename, fileStart(filename))...)
		diags = append(diags, checkOutputs(fc, body, helperRename, fileStart(filename))...)
	}

	// spiffe-helper runs cmd and signals pid_file_name after each X.509
	// update only; JWT updates signal nothing.
	if cmd != "" {
		ec, err := builtinConfig(hostapi.KindNotifier, "exec", map[string]any{"cmd": cmd, "args": cmdArgs, "signal": renewSignal})
		if err != nil {
			return nil, append(diags, errorf(attrs["cmd"].Range, "Built-in missing", "%v", err))
		}
		svid.Notifiers = append(svid.Notifiers, Notifier{
			Plugin:  Plugin{Name: "exec", Type: "exec", Config: ec, DeclRange: attrs["cmd"].Range},
			On:      hostapi.ChangedX509,
			Timeout: DefaultNotifyTimeout,
		})
		if !diags.HasErrors() {
			diags = append(diags, validatePlugin(ec, "exec notifier setting", body,
				map[string]string{"args": "cmd_args", "signal": "renew_signal"}, attrs["cmd"].Range)...)
		}
	}
	if pidFile != "" {
		sc, err := builtinConfig(hostapi.KindNotifier, "signal", map[string]any{"pid_file": pidFile, "signal": renewSignal})
		if err != nil {
			return nil, append(diags, errorf(attrs["pid_file_name"].Range, "Built-in missing", "%v", err))
		}
		svid.Notifiers = append(svid.Notifiers, Notifier{
			Plugin:  Plugin{Name: "signal", Type: "signal", Config: sc, DeclRange: attrs["pid_file_name"].Range},
			On:      hostapi.ChangedX509,
			Timeout: DefaultNotifyTimeout,
		})
		if !diags.HasErrors() {
			diags = append(diags, validatePlugin(sc, "signal notifier setting", body,
				map[string]string{"pid_file": "pid_file_name", "signal": "renew_signal"}, attrs["pid_file_name"].Range)...)
		}
	}
	cfg.SVIDs = []SVID{svid}

	cfg.Health = Health{
		Address:       fmt.Sprintf(":%d", DefaultSpiffeHelperPort),
		LivenessPath:  DefaultLivenessPath,
		ReadinessPath: DefaultReadinessPath,
	}
	if health != nil {
		diags = append(diags, helperHealth(health, &cfg.Health)...)
	}
	if !diags.HasErrors() {
		diags = append(diags, validatePlugin(cfg.Issuers[0].Config, "workloadapi issuer setting", body,
			map[string]string{"address": "agent_address"}, fileStart(filename))...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

func helperJWT(b *hcl.Block) (hostapi.JWTRequest, hcl.Diagnostics) {
	c, diags := b.Body.Content(jwtSVIDSchema)
	diags = explain(diags, b.Body, jwtSVIDSchema)
	var r hostapi.JWTRequest
	if a, ok := c.Attributes["jwt_audience"]; ok {
		diags = append(diags, decode(a, &r.Audience)...)
	}
	if a, ok := c.Attributes["jwt_extra_audiences"]; ok {
		diags = append(diags, decode(a, &r.ExtraAudiences)...)
	}
	if a, ok := c.Attributes["jwt_svid_file_name"]; ok {
		if d := decode(a, &r.FileName); d.HasErrors() {
			diags = append(diags, d...)
		} else if r.FileName != "" {
			diags = append(diags, fileNameDiag(a, r.FileName)...)
		}
	}
	if diags.HasErrors() {
		return r, diags
	}
	if r.Audience == "" {
		diags = append(diags, errorf(b.DefRange, "Missing jwt_audience",
			"each jwt_svids entry needs the token's audience; add jwt_audience = \"your-audience\"."))
	}
	if r.FileName == "" {
		diags = append(diags, errorf(b.DefRange, "Missing jwt_svid_file_name",
			"each jwt_svids entry needs the file the token is written to; add jwt_svid_file_name = \"jwt_svid.token\"."))
	}
	return r, diags
}

// checkJWTFileNames reports two JWT-SVIDs written to the same file.
func checkJWTFileNames(jwts []hostapi.JWTRequest, blocks hcl.Blocks, attr string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for _, r := range jwts {
		if seen[r.FileName] {
			subject := blocks[0].DefRange
			for _, b := range blocks {
				if a, _ := b.Body.JustAttributes(); a != nil {
					if fa, ok := a[attr]; ok {
						var s string
						if v, _ := fa.Expr.Value(nil); v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
							s = v.AsString()
						}
						if s == r.FileName {
							subject = fa.Expr.Range()
						}
					}
				}
			}
			diags = append(diags, errorf(subject, "Duplicate JWT-SVID file name",
				"two JWT-SVIDs are written to %q, so one would overwrite the other; give each its own %s.", r.FileName, attr))
		}
		seen[r.FileName] = true
	}
	return diags
}

func helperHealth(b *hcl.Block, h *Health) hcl.Diagnostics {
	c, diags := b.Body.Content(healthChecksSchema)
	diags = explain(diags, b.Body, healthChecksSchema) // reported with the value errors
	if a, ok := c.Attributes["listener_enabled"]; ok {
		diags = append(diags, decode(a, &h.Enabled)...)
	}
	if a, ok := c.Attributes["bind_port"]; ok {
		var port int
		d := decode(a, &port)
		diags = append(diags, d...)
		switch {
		case d.HasErrors():
		case port < 0 || port > 65535:
			diags = append(diags, errorf(a.Expr.Range(), "Invalid bind_port",
				"bind_port = %d is not a TCP port; use a port between 1 and 65535, or leave it out for %d.", port, DefaultSpiffeHelperPort))
		case port > 0:
			h.Address = fmt.Sprintf(":%d", port)
		}
	}
	diags = append(diags, healthPaths(c.Attributes, h, true)...)
	sortDiags(diags)
	return diags
}

// attrsToBlocks turns HCL v1's attribute forms of a nested object into
// blocks, so that both forms read the same: "name = { ... }" and, when
// list is set, "name = [{ ... }, { ... }]".
func attrsToBlocks(body *hclsyntax.Body, name string, list bool) hcl.Diagnostics {
	a, ok := body.Attributes[name]
	if !ok {
		return nil
	}
	delete(body.Attributes, name)
	for _, b := range body.Blocks {
		if b.Type == name {
			return hcl.Diagnostics{errorf(a.NameRange, "Duplicate "+name,
				"%s is set both as an attribute here and as a block at %s; keep one of them.", name, describe(b.DefRange()))}
		}
	}
	var objs []*hclsyntax.ObjectConsExpr
	switch e := a.Expr.(type) {
	case *hclsyntax.ObjectConsExpr:
		objs = append(objs, e)
	case *hclsyntax.TupleConsExpr:
		if !list {
			break
		}
		for _, item := range e.Exprs {
			o, ok := item.(*hclsyntax.ObjectConsExpr)
			if !ok {
				return hcl.Diagnostics{errorf(item.Range(), "Invalid "+name,
					"each element of %s must be an object such as {jwt_audience = \"aud\", jwt_svid_file_name = \"jwt_svid.token\"}.", name)}
			}
			objs = append(objs, o)
		}
		if len(e.Exprs) == 0 {
			return nil
		}
	}
	if objs == nil {
		want := "an object { ... } or a block"
		if list {
			want = "a list of objects [{ ... }] or repeated blocks"
		}
		return hcl.Diagnostics{errorf(a.Expr.Range(), "Invalid "+name, "%s must be %s.", name, want)}
	}
	var diags hcl.Diagnostics
	for _, o := range objs {
		ob := &hclsyntax.Body{
			Attributes: hclsyntax.Attributes{},
			SrcRange:   o.SrcRange,
			EndRange:   hcl.Range{Filename: o.SrcRange.Filename, Start: o.SrcRange.End, End: o.SrcRange.End},
		}
		for _, item := range o.Items {
			key := hcl.ExprAsKeyword(item.KeyExpr)
			if key == "" {
				v, d := item.KeyExpr.Value(nil)
				if d.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
					diags = append(diags, errorf(item.KeyExpr.Range(), "Invalid key",
						"a key of %s must be a name such as jwt_audience.", name))
					continue
				}
				key = v.AsString()
			}
			if prev, dup := ob.Attributes[key]; dup {
				diags = append(diags, errorf(item.KeyExpr.Range(), "Duplicate key",
					"%s is already set at %s; remove one of them.", key, describe(prev.NameRange)))
				continue
			}
			ob.Attributes[key] = &hclsyntax.Attribute{
				Name:      key,
				Expr:      item.ValueExpr,
				SrcRange:  hcl.RangeBetween(item.KeyExpr.Range(), item.ValueExpr.Range()),
				NameRange: item.KeyExpr.Range(),
			}
		}
		body.Blocks = append(body.Blocks, &hclsyntax.Block{
			Type:            name,
			Body:            ob,
			TypeRange:       o.OpenRange,
			OpenBraceRange:  o.OpenRange,
			CloseBraceRange: ob.EndRange,
		})
	}
	return diags
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// builtinConfig returns the config of the built-in module kind.name, as a
// native block with attrs (by their config names) decodes it: the
// module's defaults, then attrs. helper.conf is mapped onto the same
// config blocks a user would write, so this package knows no concrete
// plugin; the modules are linked in by whoever links the agent.
func builtinConfig(kind hostapi.Kind, name string, attrs map[string]any) (any, error) {
	m, ok := registry.Lookup(kind, name)
	if !ok {
		return nil, fmt.Errorf("helper.conf needs the built-in %s %q, which this binary does not link", kind, name)
	}
	cfg := m.NewConfig()
	js, err := json.Marshal(attrs)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("mapping helper.conf onto %s.%s: %w", kind, name, err)
	}
	return cfg, nil
}
