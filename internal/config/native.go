package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

var nativeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "daemon_mode"}, {Name: "fetch_timeout"}, {Name: "state_dir"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "plugin", LabelNames: []string{"name"}},
		{Type: "issuer", LabelNames: []string{"name"}},
		{Type: "svid", LabelNames: []string{"name"}},
		{Type: "health"},
	},
}

var svidSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "issuer"}, {Name: "spiffe_id"}, {Name: "hint"}, {Name: "all"},
		{Name: "x509"}, {Name: "ttl"}, {Name: "renew_fraction"}, {Name: "jwt_bundles"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "jwt"},
		{Type: "writer", LabelNames: []string{"type"}},
		{Type: "notifier", LabelNames: []string{"type"}},
	},
}

var jwtSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "audience"}, {Name: "extra_audiences"}, {Name: "file_name"}},
}

var healthSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "enabled"}, {Name: "address"}, {Name: "liveness_path"}, {Name: "readiness_path"},
		{Name: "expose_status"},
	},
}

// Core attributes, split off a plugin block before the rest is decoded
// into the module's config struct.
var (
	issuerCore   = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "type"}}}
	notifierCore = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "on"}, {Name: "timeout"}, {Name: "retry_backoff"}}}
)

func parseNative(body *hclsyntax.Body, src []byte, filename string) (*Config, hcl.Diagnostics) {
	// Unknown keys and blocks are reported with the rest: they must not
	// hide the value errors elsewhere in the file.
	content, diags := body.Content(nativeSchema)
	diags = explain(diags, body, nativeSchema)
	cfg := &Config{
		Format:       FormatNative,
		DaemonMode:   true,
		FetchTimeout: DefaultFetchTimeout,
		Issuers:      []Plugin{},
		SVIDs:        []SVID{},
		Health: Health{
			Address:       DefaultHealthAddress,
			LivenessPath:  DefaultLivenessPath,
			ReadinessPath: DefaultReadinessPath,
		},
	}
	if a, ok := content.Attributes["daemon_mode"]; ok {
		diags = append(diags, decode(a, &cfg.DaemonMode)...)
	}
	if a, ok := content.Attributes["fetch_timeout"]; ok {
		d, ds := durationValue(a, false)
		diags = append(diags, ds...)
		cfg.FetchTimeout = d
	}

	if a, ok := content.Attributes["state_dir"]; ok {
		diags = append(diags, decodePath(a, filename, &cfg.StateDir)...)
	}

	x := &externals{decls: map[string]*externalDecl{}}
	for _, b := range content.Blocks {
		if b.Type != "plugin" {
			continue
		}
		name := b.Labels[0]
		if prev, dup := x.decls[name]; dup {
			diags = append(diags, errorf(b.LabelRanges[0], "Duplicate plugin name",
				"a plugin named %q is already defined at %s; give each plugin block its own name.", name, describe(prev.ext.DeclRange)))
			continue
		}
		d, ds := decodeExternal(b, filename)
		diags = append(diags, ds...)
		if len(builtinKinds(name)) > 0 {
			continue // reported; references keep meaning the built-in
		}
		x.decls[name] = d
		x.names = append(x.names, name)
	}

	issuers := map[string]hcl.Range{}
	var healthBlock *hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "issuer":
			name := b.Labels[0]
			if prev, dup := issuers[name]; dup {
				diags = append(diags, errorf(b.LabelRanges[0], "Duplicate issuer name",
					"an issuer named %q is already defined at %s; give each issuer block its own name.", name, describe(prev)))
				continue
			}
			issuers[name] = b.DefRange
			p, d := decodeIssuer(b, src, x)
			diags = append(diags, d...)
			if !d.HasErrors() {
				cfg.Issuers = append(cfg.Issuers, p)
			}
		case "health":
			if healthBlock != nil {
				diags = append(diags, errorf(b.DefRange, "Duplicate health block",
					"a health block is already defined at %s; merge the two into one.", describe(healthBlock.DefRange)))
				continue
			}
			healthBlock = b
			diags = append(diags, decodeHealth(b, &cfg.Health)...)
		}
	}
	var issuerNames []string
	for _, b := range content.Blocks {
		if b.Type == "issuer" && !contains(issuerNames, b.Labels[0]) {
			issuerNames = append(issuerNames, b.Labels[0])
		}
	}
	svids := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		if b.Type != "svid" {
			continue
		}
		name := b.Labels[0]
		if prev, dup := svids[name]; dup {
			diags = append(diags, errorf(b.LabelRanges[0], "Duplicate svid name",
				"an svid named %q is already defined at %s; give each svid block its own name.", name, describe(prev)))
			continue
		}
		svids[name] = b.DefRange
		s, d := decodeSVID(b, src, issuerNames, x)
		diags = append(diags, d...)
		if !d.HasErrors() {
			cfg.SVIDs = append(cfg.SVIDs, s)
		}
	}
	diags = append(diags, checkSigningIssuers(cfg)...)
	diags = append(diags, x.check()...)
	cfg.Plugins = x.list()
	sortDiags(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// csrSigner is implemented by the config of an issuer that signs the core's
// CSRs, and so must be told which SPIFFE ID to put in them.
type csrSigner interface{ SignsCSR() bool }

// checkSigningIssuers requires spiffe_id in every X.509 svid block whose
// issuer signs requests: such an issuer cannot choose the identity itself.
func checkSigningIssuers(cfg *Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range cfg.SVIDs {
		if !s.X509 || s.SPIFFEID != "" {
			continue
		}
		for _, iss := range cfg.Issuers {
			c, ok := iss.Config.(csrSigner)
			if iss.Name == s.Issuer && (iss.External != nil || ok && c.SignsCSR()) {
				diags = append(diags, errorf(s.DeclRange, "Missing spiffe_id",
					"svid %q gets its X509-SVID from issuer %q (%s), which signs requests and so must be told the identity; add spiffe_id = \"spiffe://<trust domain>/%s\", say.",
					s.Name, s.Issuer, iss.Type, s.Name))
			}
		}
	}
	return diags
}

// lookupModule resolves a plugin block's type to a built-in from the
// registry; plugins are the names of the plugin blocks, which are valid
// too (the caller looked them up first).
func lookupModule(kind hostapi.Kind, typ string, subject hcl.Range, plugins []string) (registry.Module, hcl.Diagnostics) {
	if m, ok := registry.Lookup(kind, typ); ok {
		return m, nil
	}
	names := registry.Names(kind)
	if len(plugins) == 0 {
		return registry.Module{}, hcl.Diagnostics{errorf(subject, fmt.Sprintf("Unknown %s type", kind),
			"there is no %s type %q.%s Valid types are %s.", kind, typ, didYouMean(typ, names), quoteList(names))}
	}
	return registry.Module{}, hcl.Diagnostics{errorf(subject, fmt.Sprintf("Unknown %s type", kind),
		"there is no %s type or plugin %q.%s Valid types are %s, and the plugin blocks %s.",
		kind, typ, didYouMean(typ, append(names, plugins...)), quoteList(names), quoteList(plugins))}
}

// decodeRef decodes a block that names a built-in type or a plugin
// block. A block naming a plugin may carry only the core attributes (rest
// must be empty): the plugin's settings live in its config {}.
func decodeRef(kind hostapi.Kind, typ string, typeRange hcl.Range, b *hcl.Block, rest hcl.Body, src []byte, x *externals) (any, *External, hcl.Diagnostics) {
	ext, diags := x.use(typ, kind, typeRange)
	if ext == nil {
		cfg, d := decodePlugin(kind, typ, typeRange, b, rest, src, x.refNames())
		return cfg, nil, d
	}
	_, ds := rest.Content(&hcl.BodySchema{})
	for _, d := range ds {
		if d.Severity != hcl.DiagError {
			continue
		}
		d.Summary = "Plugin setting outside its plugin block"
		d.Detail = fmt.Sprintf("this %s refers to plugin %q, whose own settings go in the config {} block of plugin %q at %s; move it there. Here only the core settings are allowed%s.",
			kind, typ, typ, describe(ext.DeclRange), coreList(kind))
		diags = append(diags, d)
	}
	return nil, ext, diags
}

func coreList(kind hostapi.Kind) string {
	var names []string
	for _, a := range core(kind).Attributes {
		if a.Name != "type" {
			names = append(names, a.Name)
		}
	}
	if len(names) == 0 {
		return " (a " + string(kind) + " has none)"
	}
	return " (" + quoteList(names) + ")"
}

// decodePlugin decodes a plugin block's body (core attributes already
// split off into rest) into a fresh config struct of the module, then
// validates it.
func decodePlugin(kind hostapi.Kind, typ string, typeRange hcl.Range, b *hcl.Block, rest hcl.Body, src []byte, plugins []string) (any, hcl.Diagnostics) {
	mod, diags := lookupModule(kind, typ, typeRange, plugins)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg := mod.NewConfig()
	sb, _ := b.Body.(*hclsyntax.Body)
	if sb != nil {
		// rest shares sb's attributes, so the rewrite reaches it too.
		diags = append(diags, rewriteModes(sb, src, modeFields(cfg))...)
		if diags.HasErrors() {
			return nil, diags
		}
	}
	schema, _ := gohcl.ImpliedBodySchema(cfg)
	schema.Attributes = append(schema.Attributes, core(kind).Attributes...)
	diags = append(diags, explain(gohcl.DecodeBody(rest, nil, cfg), b.Body, schema)...)
	if diags.HasErrors() {
		return nil, diags
	}
	diags = append(diags, validatePlugin(cfg, fmt.Sprintf("%s %s setting", typ, kind), sb, nil, b.DefRange)...)
	if sb != nil {
		diags = append(diags, checkOutputs(cfg, sb, nil, b.DefRange)...)
	}
	return cfg, diags
}

func decodeIssuer(b *hcl.Block, src []byte, x *externals) (Plugin, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	core, rest, d := b.Body.PartialContent(issuerCore)
	diags = append(diags, d...)
	typ, typeRange := b.Labels[0], b.LabelRanges[0]
	if a, ok := core.Attributes["type"]; ok {
		diags = append(diags, decode(a, &typ)...)
		typeRange = a.Expr.Range()
	}
	if diags.HasErrors() {
		return Plugin{}, diags
	}
	cfg, ext, d := decodeRef(hostapi.KindIssuer, typ, typeRange, b, rest, src, x)
	diags = append(diags, d...)
	return Plugin{Name: b.Labels[0], Type: typ, Config: cfg, External: ext, DeclRange: b.DefRange}, diags
}

// core returns the core attributes of a plugin block of kind.
func core(kind hostapi.Kind) *hcl.BodySchema {
	switch kind {
	case hostapi.KindIssuer:
		return issuerCore
	case hostapi.KindNotifier:
		return notifierCore
	}
	return &hcl.BodySchema{}
}

// jwtBundleNeeder is the optional method of a writer config that delivers
// JWT bundles (files.Config).
type jwtBundleNeeder interface{ NeedsJWTBundles() bool }

func decodeSVID(b *hcl.Block, src []byte, issuers []string, x *externals) (SVID, hcl.Diagnostics) {
	s := SVID{Name: b.Labels[0], X509: true, RenewFraction: DefaultRenewFraction, DeclRange: b.DefRange,
		Writers: []Plugin{}, Notifiers: []Notifier{}}
	content, diags := b.Body.Content(svidSchema)
	diags = explain(diags, b.Body, svidSchema) // reported with the value errors
	at := content.Attributes
	if a, ok := at["issuer"]; ok {
		if d := decode(a, &s.Issuer); d.HasErrors() {
			diags = append(diags, d...)
		} else if !contains(issuers, s.Issuer) {
			diags = append(diags, errorf(a.Expr.Range(), "Unknown issuer",
				"svid %q names issuer %q, which is not defined.%s Defined issuers are %s; name one of them or add an issuer %q block.",
				s.Name, s.Issuer, didYouMean(s.Issuer, issuers), quoteList(issuers), s.Issuer))
		}
	} else {
		switch len(issuers) {
		case 0:
			diags = append(diags, errorf(b.DefRange, "No issuer",
				"svid %q has no issuer to get credentials from; add an issuer block, for example issuer \"spire\" { type = \"workloadapi\" }.", s.Name))
		case 1:
			s.Issuer = issuers[0]
		default:
			diags = append(diags, errorf(b.DefRange, "Ambiguous issuer",
				"svid %q must say which issuer it uses, as there are %d (%s); add issuer = %q, say.", s.Name, len(issuers), quoteList(issuers), issuers[0]))
		}
	}
	if a, ok := at["spiffe_id"]; ok {
		if d := decode(a, &s.SPIFFEID); d.HasErrors() {
			diags = append(diags, d...)
		} else if s.SPIFFEID != "" {
			if _, err := spiffeid.FromString(s.SPIFFEID); err != nil {
				diags = append(diags, errorf(a.Expr.Range(), "Invalid SPIFFE ID",
					"spiffe_id = %q is not a SPIFFE ID (%s); write it as spiffe://<trust domain>/<path>, for example \"spiffe://example.org/web\".", s.SPIFFEID, err))
			}
		}
	}
	if a, ok := at["hint"]; ok {
		diags = append(diags, decode(a, &s.Hint)...)
	}
	if a, ok := at["all"]; ok {
		diags = append(diags, decode(a, &s.All)...)
	}
	if a, ok := at["x509"]; ok {
		diags = append(diags, decode(a, &s.X509)...)
	}
	if a, ok := at["ttl"]; ok {
		d, ds := durationValue(a, true)
		diags = append(diags, ds...)
		s.TTL = d
	}
	if a, ok := at["renew_fraction"]; ok {
		if d := decode(a, &s.RenewFraction); d.HasErrors() {
			diags = append(diags, d...)
		} else if s.RenewFraction <= 0 || s.RenewFraction >= 1 {
			diags = append(diags, errorf(a.Expr.Range(), "Invalid renew_fraction",
				"renew_fraction = %g must be between 0 and 1, exclusive: the fraction of a credential's lifetime after which it is renewed; 0.5 renews at half-life.", s.RenewFraction))
		}
	}
	var jwtBundles *bool
	var jwtBundlesAttr *hcl.Attribute
	if a, ok := at["jwt_bundles"]; ok {
		var v bool
		diags = append(diags, decode(a, &v)...)
		jwtBundles, jwtBundlesAttr = &v, a
	}

	var jwtBlocks hcl.Blocks
	counts := map[string]int{}
	needsJWTBundles := ""
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "jwt":
			r, d := decodeJWT(blk)
			diags = append(diags, d...)
			if !d.HasErrors() {
				s.JWT = append(s.JWT, r)
				jwtBlocks = append(jwtBlocks, blk)
			}
		case "writer":
			typ := blk.Labels[0]
			cfg, ext, d := decodeRef(hostapi.KindWriter, typ, blk.LabelRanges[0], blk, blk.Body, src, x)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			if n, ok := cfg.(jwtBundleNeeder); ok && n.NeedsJWTBundles() && needsJWTBundles == "" {
				needsJWTBundles = typ
			}
			s.Writers = append(s.Writers, Plugin{Name: instanceName(typ, counts), Type: typ, Config: cfg, External: ext, DeclRange: blk.DefRange})
		case "notifier":
			n, d := decodeNotifier(blk, src, counts, x)
			diags = append(diags, d...)
			if !d.HasErrors() {
				s.Notifiers = append(s.Notifiers, n)
			}
		}
	}
	diags = append(diags, checkJWTFileNames(s.JWT, jwtBlocks, "file_name")...)
	switch {
	case jwtBundles != nil:
		s.JWTBundles = *jwtBundles
		if !s.JWTBundles && needsJWTBundles != "" {
			diags = append(diags, errorf(jwtBundlesAttr.Expr.Range(), "JWT bundles turned off but delivered",
				"svid %q has jwt_bundles = false, but its %s writer delivers a JWT bundle file; remove jwt_bundles = false or the writer's JWT bundle file name.", s.Name, needsJWTBundles))
		}
	default:
		s.JWTBundles = len(s.JWT) > 0 || needsJWTBundles != ""
	}
	if !diags.HasErrors() {
		if len(s.Writers) == 0 {
			diags = append(diags, errorf(b.DefRange, "No writer",
				"svid %q delivers nowhere; add a writer block, for example writer \"files\" { dir = \"/run/svid/%s\" }.", s.Name, s.Name))
		}
		if !s.X509 && len(s.JWT) == 0 && !s.JWTBundles {
			diags = append(diags, errorf(b.DefRange, "Nothing requested",
				"svid %q has x509 = false and no jwt block, so there is nothing to fetch; remove x509 = false or add a jwt block.", s.Name))
		}
	}
	return s, diags
}

// instanceName names a writer or notifier by its type, suffixed "#N" when
// the type repeats in one svid block.
func instanceName(typ string, counts map[string]int) string {
	counts[typ]++
	if n := counts[typ]; n > 1 {
		return fmt.Sprintf("%s#%d", typ, n)
	}
	return typ
}

func decodeJWT(b *hcl.Block) (hostapi.JWTRequest, hcl.Diagnostics) {
	c, diags := b.Body.Content(jwtSchema)
	diags = explain(diags, b.Body, jwtSchema)
	var r hostapi.JWTRequest
	if a, ok := c.Attributes["audience"]; ok {
		diags = append(diags, decode(a, &r.Audience)...)
	}
	if a, ok := c.Attributes["extra_audiences"]; ok {
		diags = append(diags, decode(a, &r.ExtraAudiences)...)
	}
	if a, ok := c.Attributes["file_name"]; ok {
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
		diags = append(diags, errorf(b.DefRange, "Missing audience",
			"a jwt block needs the token's audience; add audience = \"api\" (the service the token is presented to)."))
	}
	if r.FileName == "" {
		diags = append(diags, errorf(b.DefRange, "Missing file_name",
			"a jwt block needs the name the token is delivered under; add file_name = \"api.token\"."))
	}
	return r, diags
}

func decodeNotifier(b *hcl.Block, src []byte, counts map[string]int, x *externals) (Notifier, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	core, rest, d := b.Body.PartialContent(notifierCore)
	diags = append(diags, d...)
	n := Notifier{On: hostapi.ChangedX509, Timeout: DefaultNotifyTimeout}
	if a, ok := core.Attributes["on"]; ok {
		var on []string
		if d := decode(a, &on); d.HasErrors() {
			diags = append(diags, d...)
		} else {
			n.On = 0
			valid := []string{"x509", "jwt_svid", "jwt_bundle"}
			for _, s := range on {
				c, ok := hostapi.ParseChange(s)
				if !ok {
					diags = append(diags, errorf(a.Expr.Range(), "Unknown change",
						"on = [..., %q, ...] names no change.%s Use %s.", s, didYouMean(s, valid), quoteList(valid)))
				}
				n.On |= c
			}
			if len(on) == 0 {
				diags = append(diags, errorf(a.Expr.Range(), "Empty on",
					"on = [] would never fire the notifier; list the changes that should, for example on = [\"x509\"], or remove the notifier."))
			}
		}
	}
	if a, ok := core.Attributes["timeout"]; ok {
		t, ds := durationValue(a, false)
		diags = append(diags, ds...)
		n.Timeout = t
	}
	if a, ok := core.Attributes["retry_backoff"]; ok {
		t, ds := durationValue(a, false)
		diags = append(diags, ds...)
		n.RetryBackoff = t
	}
	typ := b.Labels[0]
	cfg, ext, d := decodeRef(hostapi.KindNotifier, typ, b.LabelRanges[0], b, rest, src, x)
	diags = append(diags, d...)
	n.Plugin = Plugin{Name: instanceName(typ, counts), Type: typ, Config: cfg, External: ext, DeclRange: b.DefRange}
	return n, diags
}

func decodeHealth(b *hcl.Block, h *Health) hcl.Diagnostics {
	c, diags := b.Body.Content(healthSchema)
	diags = explain(diags, b.Body, healthSchema) // reported with the value errors
	if a, ok := c.Attributes["enabled"]; ok {
		diags = append(diags, decode(a, &h.Enabled)...)
	}
	if a, ok := c.Attributes["address"]; ok {
		var addr string
		if d := decode(a, &addr); d.HasErrors() {
			diags = append(diags, d...)
		} else if d := healthAddress(a, addr); d.HasErrors() {
			diags = append(diags, d...)
		} else {
			h.Address = addr
		}
	}
	if a, ok := c.Attributes["expose_status"]; ok {
		diags = append(diags, decode(a, &h.ExposeStatus)...)
	}
	diags = append(diags, healthPaths(c.Attributes, h, false)...)
	sortDiags(diags)
	return diags
}
