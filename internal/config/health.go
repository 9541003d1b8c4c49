package config

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// reservedHealthPaths are served by the health listener itself.
var reservedHealthPaths = map[string]string{
	"/status":  "the agent's own status path (svidagent status reads it)",
	"/metrics": "the agent's own metrics path",
}

// healthPath decodes a liveness or readiness path: a clean absolute URL
// path of letters, digits and - . _ ~ /, that is not /status or /metrics.
// Anything else could not be served as written (the listener would see a
// different path, a pattern, or a conflict).
func healthPath(a *hcl.Attribute) (string, hcl.Diagnostics) {
	var p string
	if d := decode(a, &p); d.HasErrors() {
		return "", d
	}
	bad := func(format string, args ...any) (string, hcl.Diagnostics) {
		return "", hcl.Diagnostics{errorf(a.Expr.Range(), "Invalid health path", format, args...)}
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~/", r)) {
			return bad("%s = %q has %q; a health path is made of letters, digits and - . _ ~ /, for example \"/healthz\".", a.Name, p, r)
		}
	}
	if clean := path.Clean("/" + p); clean != p {
		if !strings.HasPrefix(p, "/") {
			return bad("%s = %q must be a URL path starting with \"/\"; write %q.", a.Name, p, clean)
		}
		return bad("%s = %q is not a clean path; write %q.", a.Name, p, clean)
	}
	if why, ok := reservedHealthPaths[p]; ok {
		return bad("%s = %q is %s; choose another path, such as %q.", a.Name, p, why, "/healthz"+p)
	}
	return p, nil
}

// healthPaths sets h's liveness and readiness paths from attrs (absent
// ones keep their default; so do empty ones with emptyIsDefault, as in
// spiffe-helper), and refuses two probes on one path.
func healthPaths(attrs hcl.Attributes, h *Health, emptyIsDefault bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var live *hcl.Attribute
	for _, name := range []string{"liveness_path", "readiness_path"} {
		a, ok := attrs[name]
		if !ok {
			continue
		}
		if v, d := a.Expr.Value(nil); emptyIsDefault && !d.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() && v.AsString() == "" {
			delete(attrs, name)
			continue
		}
		p, d := healthPath(a)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if name == "liveness_path" {
			h.LivenessPath, live = p, a
			continue
		}
		if p == h.LivenessPath {
			other := "the default liveness_path is " + strconv.Quote(p)
			if live != nil {
				other = fmt.Sprintf("liveness_path is %q too (%s)", p, describe(live.Expr.Range()))
			}
			diags = append(diags, errorf(a.Expr.Range(), "Invalid health path",
				"readiness_path = %q, but %s; give each probe its own path, for example \"/live\" and \"/ready\".", p, other))
			continue
		}
		h.ReadinessPath = p
	}
	if live != nil && attrs["readiness_path"] == nil && h.LivenessPath == h.ReadinessPath {
		diags = append(diags, errorf(live.Expr.Range(), "Invalid health path",
			"liveness_path = %q is the default readiness_path; give each probe its own path, for example \"/live\" and \"/ready\".", h.LivenessPath))
	}
	return diags
}

// healthAddress checks a health listener address: a TCP host:port with a
// port from 0 (any free port) to 65535.
func healthAddress(a *hcl.Attribute, addr string) hcl.Diagnostics {
	bad := func(format string, args ...any) hcl.Diagnostics {
		return hcl.Diagnostics{errorf(a.Expr.Range(), "Invalid health address", format, args...)}
	}
	if strings.Contains(addr, "://") {
		return bad("address = %q: the health listener listens on TCP only; write a host:port such as \"127.0.0.1:8081\".", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || strings.ContainsAny(host, "/ ") {
		return bad("address = %q is not a host:port; write for example \"127.0.0.1:8081\", or \":8081\" for every interface.", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		return bad("address = %q: port %s is not a TCP port; use a port between 1 and 65535, for example \"127.0.0.1:8081\".", addr, port)
	}
	return nil
}
