package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

type testConfig struct{ Greeting string }

type testNotifier struct{ greeting string }

func (testNotifier) Notify(context.Context, *hostapi.RotationEvent) error { return nil }

// TestTypedRegistration: a typed module gets its kind from the function
// that registered it, builds from its own config type, and refuses
// another type with an error naming both.
func TestTypedRegistration(t *testing.T) {
	registry.RegisterNotifier("registry-test", func() *testConfig { return &testConfig{Greeting: "hi"} },
		func(c *testConfig, _ registry.Env) (hostapi.Notifier, error) { return testNotifier{c.Greeting}, nil })
	m, ok := registry.Lookup(hostapi.KindNotifier, "registry-test")
	if !ok || m.Kind() != hostapi.KindNotifier || m.Name() != "registry-test" {
		t.Fatalf("Lookup = %+v, %v; want notifier.registry-test", m, ok)
	}
	cfg := m.NewConfig()
	got, err := m.New(cfg, registry.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := got.(testNotifier); !ok || n.greeting != "hi" {
		t.Fatalf("New = %#v, want the notifier built from the default config", got)
	}
	if _, err := m.New(&struct{}{}, registry.Env{}); err == nil || !strings.Contains(err.Error(), "*registry_test.testConfig") {
		t.Fatalf("New with another config type = %v, want an error naming the wanted type", err)
	}
	if _, ok := registry.Lookup(hostapi.KindWriter, "registry-test"); ok {
		t.Fatal("a notifier is found as a writer")
	}
}
