package creds_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/wire"
	"github.com/svidagent/svidagent/sdk/internal/lite"
	"github.com/svidagent/svidagent/sdk/internal/lite/creds"
	"google.golang.org/protobuf/proto"
)

// deterministic marshals as lite_test does: map entries sorted.
var deterministic = proto.MarshalOptions{Deterministic: true}

var (
	web = spiffeid.RequireFromString("spiffe://example.org/web")
	fed = spiffeid.RequireFromString("spiffe://federated.test/db")
)

// credentials are real credentials of two trust domains: keys, chains,
// bundles and JWT-SVIDs.
func credentials(t *testing.T) *hostapi.Credentials {
	ca := testca.New(t, web.TrustDomain())
	other := testca.New(t, fed.TrustDomain())
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{ca.X509SVID(t, web, testca.WithHint("internal")), other.X509SVID(t, fed)},
		X509Bundles: x509bundle.NewSet(ca.X509Bundle(), other.X509Bundle()),
		JWTSVIDs: []hostapi.JWTSVID{{
			Request: hostapi.JWTRequest{Audience: "api", ExtraAudiences: []string{"x"}, FileName: "api.jwt"},
			SVID:    ca.JWTSVID(t, web, []string{"api", "x"}, time.Hour),
		}},
		JWTBundles: jwtbundle.NewSet(ca.JWTBundle(), other.JWTBundle()),
	}
}

// TestConvertLikeWire: what the guest makes of a message with the hand
// codec is what internal/wire makes of it with the generated code, for
// every plugin kind.
func TestConvertLikeWire(t *testing.T) {
	cs := credentials(t)

	t.Run("write request", func(t *testing.T) {
		pm, err := wire.CredentialSetToProto(&hostapi.CredentialSet{Name: "web", TrustDomain: web.TrustDomain(), Credentials: *cs, Changed: hostapi.ChangedX509 | hostapi.ChangedJWTBundle})
		if err != nil {
			t.Fatal(err)
		}
		want, err := wire.CredentialSetFromProto(pm)
		if err != nil {
			t.Fatal(err)
		}
		var lm lite.WriteRequest
		if err := lm.Unmarshal(mustMarshal(t, pm)); err != nil {
			t.Fatal(err)
		}
		got, err := creds.CredentialSet(&lm)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("creds.CredentialSet = %+v\nwant (wire) %+v", got, want)
		}
	})

	t.Run("issue request", func(t *testing.T) {
		pm := wire.IssueRequestToProto(&hostapi.IssueRequest{
			SPIFFEID: web, Hint: "h", All: true, X509: true, CSR: []byte{1, 2}, TTL: time.Hour,
			JWT: []hostapi.JWTRequest{{Audience: "a", ExtraAudiences: []string{"b"}, FileName: "f"}}, JWTBundles: true,
		})
		want, err := wire.IssueRequestFromProto(pm)
		if err != nil {
			t.Fatal(err)
		}
		var lm lite.IssueRequest
		if err := lm.Unmarshal(mustMarshal(t, pm)); err != nil {
			t.Fatal(err)
		}
		got, err := creds.IssueRequestOf(&lm)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("creds.IssueRequestOf = %+v\nwant (wire) %+v", got, want)
		}
	})

	for _, withKeys := range []bool{false, true} {
		t.Run("issue response", func(t *testing.T) {
			pm, err := wire.CredentialsToIssueResponse(cs, withKeys)
			if err != nil {
				t.Fatal(err)
			}
			lm, err := creds.IssueResponseOf(cs, withKeys)
			if err != nil {
				t.Fatal(err)
			}
			got, err := lm.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if want := mustMarshal(t, pm); string(got) != string(want) {
				t.Fatalf("withKeys=%v: creds.IssueResponseOf encodes\n%x\nwant (wire)\n%x", withKeys, got, want)
			}
		})
	}

	t.Run("notify request", func(t *testing.T) {
		pm := wire.RotationEventToProto(&hostapi.RotationEvent{
			Name: "web", Reason: hostapi.ChangedX509, Initial: true, Time: time.Unix(1700000000, 123),
			X509:  []hostapi.X509Identity{{SPIFFEID: web.String(), Serial: "0a", NotBefore: time.Unix(1, 0), NotAfter: time.Unix(2, 0), Hint: "h"}},
			JWT:   []hostapi.JWTIdentity{{SPIFFEID: web.String(), Audiences: []string{"a"}, Expiry: time.Unix(3, 0), FileName: "f"}},
			Paths: []string{"/run/svid.pem"},
		})
		var lm lite.NotifyRequest
		if err := lm.Unmarshal(mustMarshal(t, pm)); err != nil {
			t.Fatal(err)
		}
		if got, want := lite.RotationEvent(&lm), wire.RotationEventFromProto(pm); !reflect.DeepEqual(got, want) {
			t.Fatalf("lite.RotationEvent = %+v\nwant (wire) %+v", got, want)
		}
	})
}

// TestConvertRejectsLikeWire: hostile credentials in a write or issue
// request are errors, with internal/wire's messages.
func TestConvertRejectsLikeWire(t *testing.T) {
	cs := credentials(t)
	good, err := wire.CredentialSetToProto(&hostapi.CredentialSet{Name: "web", TrustDomain: web.TrustDomain(), Credentials: *cs})
	if err != nil {
		t.Fatal(err)
	}
	otherKey := credentials(t).X509SVIDs[0]
	otherKeyPM, _ := wire.X509SVIDsToProto([]*x509svid.SVID{otherKey}, true)
	for _, tc := range []struct {
		name   string
		mutate func(*writerv1.WriteRequest)
	}{
		{"garbage certificate", func(m *writerv1.WriteRequest) { m.X509Svids[0].CertChain[0] = []byte("not DER") }},
		{"empty chain", func(m *writerv1.WriteRequest) { m.X509Svids[0].CertChain = nil }},
		{"leaf of another identity", func(m *writerv1.WriteRequest) { m.X509Svids[0].SpiffeId = "spiffe://example.org/other" }},
		{"bad spiffe id", func(m *writerv1.WriteRequest) { m.X509Svids[0].SpiffeId = "https://example.org/web" }},
		{"key of another leaf", func(m *writerv1.WriteRequest) { m.X509Svids[0].PrivateKey = otherKeyPM[0].PrivateKey }},
		{"garbage key", func(m *writerv1.WriteRequest) { m.X509Svids[0].PrivateKey = []byte{0x30, 0x00} }},
		{"no key", func(m *writerv1.WriteRequest) { m.X509Svids[0].PrivateKey = nil }},
		{"garbage authority", func(m *writerv1.WriteRequest) { m.X509Bundles[0].Authorities[0] = []byte{0x30} }},
		{"bad bundle trust domain", func(m *writerv1.WriteRequest) { m.X509Bundles[0].TrustDomain = "Bad TD" }},
		{"garbage jwks", func(m *writerv1.WriteRequest) { m.JwtBundles[0].Jwks = []byte("{") }},
		{"empty token", func(m *writerv1.WriteRequest) { m.JwtSvids[0].Token = "" }},
		{"garbage token", func(m *writerv1.WriteRequest) { m.JwtSvids[0].Token = "a.b.c" }},
		{"bad trust domain", func(m *writerv1.WriteRequest) { m.TrustDomain = "spiffe://" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pm := proto.Clone(good).(*writerv1.WriteRequest)
			tc.mutate(pm)
			_, werr := wire.CredentialSetFromProto(pm)
			if werr == nil {
				t.Fatal("internal/wire accepts it; the case is wrong")
			}
			var lm lite.WriteRequest
			if err := lm.Unmarshal(mustMarshal(t, pm)); err != nil {
				t.Fatal(err)
			}
			_, lerr := creds.CredentialSet(&lm)
			if lerr == nil || lerr.Error() != werr.Error() {
				t.Fatalf("creds.CredentialSet: %v; want (wire) %v", lerr, werr)
			}
		})
	}
	for _, pm := range []*issuerv1.IssueRequest{{SpiffeId: "nope"}, {X509: true}} {
		_, werr := wire.IssueRequestFromProto(pm)
		var lm lite.IssueRequest
		if err := lm.Unmarshal(mustMarshal(t, pm)); err != nil {
			t.Fatal(err)
		}
		if _, lerr := creds.IssueRequestOf(&lm); werr == nil || lerr == nil || lerr.Error() != werr.Error() {
			t.Errorf("issue request %v: creds.IssueRequestOf: %v; want (wire) %v", pm, lerr, werr)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := deterministic.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
