package adapter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/svidagent/svidagent/hostapi"
)

// kindVersion is one version of a kind's service that this host speaks.
// A v2 sits beside v1 in kindVersions, highest first, with its own
// adapter constructor.
type kindVersion struct {
	service string
	// adapt returns the hostapi implementation speaking this version.
	adapt func(p *Plugin) any
}

// kindVersions lists, per kind, the service versions the host supports,
// highest first.
var kindVersions = map[hostapi.Kind][]kindVersion{
	hostapi.KindIssuer:   {{service: ServiceIssuer, adapt: func(p *Plugin) any { return &issuerV1{p: p} }}},
	hostapi.KindWriter:   {{service: ServiceWriter, adapt: func(p *Plugin) any { return &writerV1{p: p} }}},
	hostapi.KindNotifier: {{service: ServiceNotifier, adapt: func(p *Plugin) any { return &notifierV1{p: p} }}},
}

// pluginVersions lists the versions of the common plugin service the host
// supports, highest first.
var pluginVersions = []string{ServicePlugin}

// SupportedServices returns the fully-qualified names of the services of
// kind this host supports, highest version first.
func SupportedServices(kind hostapi.Kind) []string {
	var out []string
	for _, v := range kindVersions[kind] {
		out = append(out, v.service)
	}
	return out
}

// kindPrefix is the package prefix of kind's services:
// "svidagent.plugin.notifier.".
func kindPrefix(kind hostapi.Kind) string { return "svidagent.plugin." + string(kind) + "." }

// negotiate picks, as SPIRE's plugin Init does, the highest version of the
// common plugin service and of kind's service that both sides implement.
// When there is none, the error names both sides' versions.
func negotiate(name string, kind hostapi.Kind, services []string) (kindVersion, error) {
	if !hasAny(services, pluginVersions) {
		return kindVersion{}, fmt.Errorf("plugin %q implements %s; this agent supports %s: the plugin is built for another host API version",
			name, describeServices(filter(services, "svidagent.plugin.v")), strings.Join(pluginVersions, " or "))
	}
	versions, ok := kindVersions[kind]
	if !ok {
		return kindVersion{}, fmt.Errorf("plugin %q: unknown plugin kind %q", name, kind)
	}
	for _, v := range versions {
		if slices.Contains(services, v.service) {
			return v, nil
		}
	}
	theirs := filter(services, kindPrefix(kind))
	if len(theirs) == 0 {
		return kindVersion{}, fmt.Errorf("plugin %q is not a %s (it is a %s: it implements %s); this agent supports %s here; reference it where a %s is expected",
			name, kind, kindOf(services), describeServices(services), strings.Join(SupportedServices(kind), " or "), kindOf(services))
	}
	return kindVersion{}, fmt.Errorf("plugin %q implements %s; this agent supports %s; use a plugin built for %s, or an agent that supports %s",
		name, strings.Join(theirs, " and "), strings.Join(SupportedServices(kind), " or "), strings.Join(SupportedServices(kind), " or "), strings.Join(theirs, " or "))
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// filter returns the services starting with prefix.
func filter(services []string, prefix string) []string {
	var out []string
	for _, s := range services {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func describeServices(services []string) string {
	if len(services) == 0 {
		return "no services"
	}
	return strings.Join(services, ", ")
}

// kindOf names the kinds services implements, for messages.
func kindOf(services []string) string {
	var kinds []string
	for _, k := range []hostapi.Kind{hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier} {
		if len(filter(services, kindPrefix(k))) > 0 {
			kinds = append(kinds, string(k))
		}
	}
	if len(kinds) == 0 {
		return "nothing"
	}
	return strings.Join(kinds, " or ")
}
