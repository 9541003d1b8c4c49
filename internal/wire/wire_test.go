package wire_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/wire"
	"google.golang.org/protobuf/proto"
)

var id = spiffeid.RequireFromString("spiffe://example.org/web")

func TestCredentialSetRoundTrip(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	other := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	svid := ca.X509SVID(t, id, testca.WithHint("internal"))
	req := hostapi.JWTRequest{Audience: "api", ExtraAudiences: []string{"audit"}, FileName: "api.token"}
	jwt := ca.JWTSVID(t, id, req.Audiences(), time.Hour)
	in := &hostapi.CredentialSet{
		Name: "web", TrustDomain: id.TrustDomain(), Changed: hostapi.ChangedX509 | hostapi.ChangedJWTSVID,
		Credentials: hostapi.Credentials{
			X509SVIDs:   []*x509svid.SVID{svid},
			X509Bundles: x509bundle.NewSet(ca.X509Bundle(), other.X509Bundle()),
			JWTSVIDs:    []hostapi.JWTSVID{{Request: req, SVID: jwt}},
			JWTBundles:  jwtbundle.NewSet(ca.JWTBundle()),
		},
	}
	p, err := wire.CredentialSetToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	// Through the bytes, as a runtime carries it.
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var p2 writerv1.WriteRequest
	if err := proto.Unmarshal(b, &p2); err != nil {
		t.Fatal(err)
	}
	out, err := wire.CredentialSetFromProto(&p2)
	if err != nil {
		t.Fatal(err)
	}
	if out.Name != "web" || out.TrustDomain != id.TrustDomain() || out.Changed != in.Changed {
		t.Errorf("header = %q %s %v", out.Name, out.TrustDomain, out.Changed)
	}
	got := out.X509SVIDs[0]
	if got.ID != id || got.Hint != "internal" || !got.Certificates[0].Equal(svid.Certificates[0]) || got.PrivateKey == nil {
		t.Errorf("X509-SVID did not round-trip: %+v", got)
	}
	if out.X509Bundles.Len() != 2 {
		t.Errorf("%d X.509 bundles, want 2", out.X509Bundles.Len())
	}
	if b, _ := out.X509Bundles.Get(other.TrustDomain()); b == nil || !b.Equal(other.X509Bundle()) {
		t.Error("federated bundle did not round-trip")
	}
	if out.JWTSVIDs[0].SVID.Marshal() != jwt.Marshal() || out.JWTSVIDs[0].Request.FileName != "api.token" {
		t.Errorf("JWT-SVID did not round-trip: %+v", out.JWTSVIDs[0])
	}
	if b, _ := out.JWTBundles.Get(id.TrustDomain()); b == nil || !b.Equal(ca.JWTBundle()) {
		t.Error("JWT bundle did not round-trip")
	}
}

func TestIssueResponseValidatesJWT(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	imposter := testca.New(t, id.TrustDomain())
	req := &hostapi.IssueRequest{JWT: []hostapi.JWTRequest{{Audience: "api", FileName: "t"}}}
	forged := imposter.JWTSVID(t, id, []string{"api"}, time.Hour)
	resp, err := wire.CredentialsToIssueResponse(&hostapi.Credentials{
		JWTSVIDs:   []hostapi.JWTSVID{{Request: req.JWT[0], SVID: forged}},
		JWTBundles: jwtbundle.NewSet(ca.JWTBundle()),
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.IssueResponseToCredentials(resp, req); err == nil {
		t.Fatal("a JWT-SVID not signed by the returned bundle was accepted")
	}
}

func TestKeysOnlyWhenAllowed(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	svid := ca.X509SVID(t, id)
	resp, err := wire.CredentialsToIssueResponse(&hostapi.Credentials{X509SVIDs: []*x509svid.SVID{svid}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.X509Svids[0].PrivateKey) != 0 {
		t.Fatal("a key was encoded without withKeys")
	}
}

func TestMalformedIsAnError(t *testing.T) {
	ca := testca.New(t, id.TrustDomain())
	svid := ca.X509SVID(t, id)
	wrongKey := ca.X509SVID(t, id)
	good, _ := wire.X509SVIDsToProto([]*x509svid.SVID{svid}, true)
	bad, _ := wire.X509SVIDsToProto([]*x509svid.SVID{wrongKey}, true)
	tests := []struct {
		name string
		p    *pluginv1.X509SVID
	}{
		{"bad id", &pluginv1.X509SVID{SpiffeId: "http://x", CertChain: good[0].CertChain}},
		{"no chain", &pluginv1.X509SVID{SpiffeId: id.String()}},
		{"garbage cert", &pluginv1.X509SVID{SpiffeId: id.String(), CertChain: [][]byte{{1, 2, 3}}}},
		{"other id", &pluginv1.X509SVID{SpiffeId: "spiffe://example.org/db", CertChain: good[0].CertChain}},
		{"mismatched key", &pluginv1.X509SVID{SpiffeId: id.String(), CertChain: good[0].CertChain, PrivateKey: bad[0].PrivateKey}},
		{"garbage key", &pluginv1.X509SVID{SpiffeId: id.String(), CertChain: good[0].CertChain, PrivateKey: []byte{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := wire.X509SVIDsFromProto([]*pluginv1.X509SVID{tt.p}); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
}

func TestRotationEventRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 123)
	ev := &hostapi.RotationEvent{
		Name: "web", Reason: hostapi.ChangedX509, Initial: true, Time: now, Paths: []string{"/a", "/b"},
		X509: []hostapi.X509Identity{{SPIFFEID: id.String(), Serial: "ab", NotBefore: now.Truncate(time.Second), NotAfter: now.Add(time.Hour).Truncate(time.Second)}},
		JWT:  []hostapi.JWTIdentity{{SPIFFEID: id.String(), Audiences: []string{"api"}, Expiry: now.Truncate(time.Second), FileName: "t"}},
	}
	got := wire.RotationEventFromProto(wire.RotationEventToProto(ev))
	if got.Name != ev.Name || got.Reason != ev.Reason || !got.Initial || !got.Time.Equal(ev.Time) ||
		got.X509[0] != ev.X509[0] || got.JWT[0].FileName != "t" || !got.JWT[0].Expiry.Equal(ev.JWT[0].Expiry) || len(got.Paths) != 2 {
		t.Errorf("round trip = %+v, want %+v", got, ev)
	}
}
