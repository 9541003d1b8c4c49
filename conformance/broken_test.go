package conformance_test

import (
	"context"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/conformance/testdata/broken/sdkbugs"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// TestBroken runs the suite over each deliberately broken fixture and
// asserts that it fails the right check for the right reason, and that
// no other check fails.
func TestBroken(t *testing.T) {
	writerDir := func(t *testing.T) (string, []byte) {
		d := t.TempDir()
		return d, mustJSON(t, map[string]any{"dir": d})
	}
	tests := []struct {
		name   string
		target func(t *testing.T) conformance.Target
		check  string
		reason string
		// others are further checks allowed to fail (consequences of the
		// same bug).
		others []string
	}{
		{
			name: "nomarker",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("nomarker.wasm")}
			},
			check:  "abi_exports",
			reason: "does not export svidagent_abi_v1",
		},
		{
			name: "noservices",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("noservices.wasm")}
			},
			check:  "negotiation",
			reason: "implements no services; this agent supports svidagent.plugin.v1.Plugin",
		},
		{
			name: "acceptall",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Impl: sdkbugs.AcceptAll{}, Info: sdk.Info{Name: "acceptall", Version: "1"}}
			},
			check:  "validate_rejects_invalid",
			reason: `Validate accepted the invalid config {"svidagent_conformance_unknown_attribute":true}`,
			others: []string{"validate_rejects_unknown_key", "failed_configure_keeps_config", "close_after_failed_configure", "notify_errors"},
		},
		{
			name: "badexample",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Impl: sdkbugs.NoConfig{},
					Info: sdk.Info{Name: "badexample", Version: "1", ExampleConfigJSON: []byte(`["not","an","object"]`)}}
			},
			check:  "describe",
			reason: `example_config_json "[\"not\",\"an\",\"object\"]" is not a JSON object`,
		},
		{
			name: "ignoresunknown",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Impl: sdkbugs.IgnoresUnknown{}, Info: sdk.Info{Name: "ignoresunknown", Version: "1"},
					ConfigJSON: []byte(`{"message":"hi"}`), InvalidConfigJSON: []byte(`{"message":""}`)}
			},
			check:  "validate_rejects_unknown_key",
			reason: `Validate accepted the valid config {"message":"hi"} with the unknown attribute "svidagent_conformance_unknown_attribute"`,
		},
		{
			name: "forgetsconfig",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("forgetsconfig.wasm"), CacheDir: cacheDir}
			},
			check:  "failed_configure_keeps_config",
			reason: "after a failed re-Configure, the previous config must stay in effect, but calling Notify",
		},
		{
			name: "strictwire",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("strictwire.wasm"), CacheDir: cacheDir}
			},
			check:  "malformed_input",
			reason: "Notify with field 1 repeated as fixed32 failed",
		},
		{
			name: "nonidempotent",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, NewImpl: func() any { return &sdkbugs.NonIdempotent{} }, Info: sdk.Info{Name: "nonidempotent", Version: "1"}}
			},
			check:  "configure_idempotent",
			reason: "a second Configure with the same config failed",
		},
		{
			name: "torn",
			target: func(t *testing.T) conformance.Target {
				d, cfg := writerDir(t)
				return conformance.Target{Kind: hostapi.KindWriter, NewImpl: func() any { return &sdkbugs.Torn{} }, Info: sdk.Info{Name: "torn", Version: "1"},
					OutputDir: d, ConfigJSON: cfg}
			},
			check:  "write_atomic",
			reason: "a concurrent reader saw a torn",
		},
		{
			name: "worldreadablekey",
			target: func(t *testing.T) conformance.Target {
				d, cfg := writerDir(t)
				return conformance.Target{Kind: hostapi.KindWriter, NewImpl: func() any { return &sdkbugs.WorldReadableKey{} }, Info: sdk.Info{Name: "wrongmodes", Version: "1"},
					OutputDir: d, ConfigJSON: cfg}
			},
			check:  "write_modes",
			reason: "svid_key.pem holds a private key and has mode 0644",
		},
		{
			name: "wrongid",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindIssuer, Impl: sdkbugs.WrongID{}, Info: sdk.Info{Name: "wrongid", Version: "1"}}
			},
			check:  "issue_spiffe_id",
			reason: "asked for spiffe://example.org/conformance, got an X509-SVID for spiffe://example.org/someone-else",
		},
		{
			name: "leak",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("leak.wasm"), CacheDir: cacheDir}
			},
			check:  "memory_flat",
			reason: "the plugin leaks per call",
		},
		{
			name: "keepsrequests",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("keepsrequests.wasm"), CacheDir: cacheDir}
			},
			check:  "memory_flat",
			reason: "the plugin leaks per call",
		},
		{
			name: "unconfigured",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("unconfigured.wasm"), CacheDir: cacheDir}
			},
			check:  "call_before_configure",
			reason: "Notify before Configure answered OK (<nil>); want FAILED_PRECONDITION",
		},
		{
			name: "unknownmethod",
			target: func(*testing.T) conformance.Target {
				return conformance.Target{Kind: hostapi.KindNotifier, Path: bin("unknownmethod.wasm"), CacheDir: cacheDir}
			},
			check:  "unknown_method",
			reason: "the unknown method svidagent.plugin.v1.Plugin/NoSuchMethod answered InvalidArgument",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := conformance.Check(context.Background(), tt.target(t))
			if err != nil {
				t.Fatal(err)
			}
			res, ok := rep.Result(tt.check)
			if !ok {
				t.Fatalf("no result for %s: %+v", tt.check, rep.Results)
			}
			if res.Status != conformance.StatusFail || !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("%s = %s %q; want fail containing %q", tt.check, res.Status, res.Reason, tt.reason)
			}
			for _, r := range rep.Results {
				if r.Status == conformance.StatusFail && r.Name != tt.check && !contains(tt.others, r.Name) {
					t.Errorf("%s failed too: %s", r.Name, r.Reason)
				}
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
