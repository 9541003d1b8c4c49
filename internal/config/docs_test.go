package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

// The configuration reference is written by hand, and these tests check it
// against the schemas and the config structs, so that it cannot drift: every
// attribute and block the loaders accept is documented.

// documented reports whether doc mentions name as code: `name`, name = or
// name {.
func documented(doc, name string) bool {
	return regexp.MustCompile("`" + regexp.QuoteMeta(name) + "`|\\b" + regexp.QuoteMeta(name) + "\\s*[={]").MatchString(doc)
}

func schemaNames(s *hcl.BodySchema) []string {
	var names []string
	for _, a := range s.Attributes {
		names = append(names, a.Name)
	}
	for _, b := range s.Blocks {
		names = append(names, b.Type)
	}
	return names
}

func TestSchemaIsDocumented(t *testing.T) {
	b, err := os.ReadFile("SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for name, s := range map[string]*hcl.BodySchema{
		"agent.hcl top level": nativeSchema, "svid": svidSchema, "jwt": jwtSchema, "health": healthSchema,
		"plugin": pluginSchema, "limits": limitsSchema, "allow": allowSchema,
		"issuer core": issuerCore, "notifier core": notifierCore,
		"helper.conf": helperSchema, "jwt_svids": jwtSVIDSchema, "health_checks": healthChecksSchema,
	} {
		for _, n := range schemaNames(s) {
			if !documented(doc, n) {
				t.Errorf("SCHEMA.md does not document %s attribute or block %q", name, n)
			}
		}
	}
}

// TestBuiltinConfigIsDocumented checks every built-in plugin's README
// against its config struct's hcl tags.
func TestBuiltinConfigIsDocumented(t *testing.T) {
	const module = "github.com/svidagent/svidagent/"
	for _, kind := range []hostapi.Kind{hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier} {
		for _, name := range registry.Names(kind) {
			m, _ := registry.Lookup(kind, name)
			cfg := m.NewConfig()
			if cfg == nil {
				continue // a test module
			}
			typ := reflect.TypeOf(cfg).Elem()
			pkg, ok := strings.CutPrefix(typ.PkgPath(), module)
			if !ok || !strings.HasPrefix(pkg, "plugins/") {
				continue // a module registered by a test
			}
			readme := filepath.Join("..", "..", filepath.FromSlash(pkg), "README.md")
			b, err := os.ReadFile(readme)
			if err != nil {
				t.Errorf("%s.%s: %v", kind, name, err)
				continue
			}
			for i := range typ.NumField() {
				tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("hcl"), ",")
				if tag != "" && !documented(string(b), tag) {
					t.Errorf("%s does not document %s.%s's attribute %q", readme, kind, name, tag)
				}
			}
		}
	}
}
