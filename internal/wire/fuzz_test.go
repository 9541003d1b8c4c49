package wire_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/wire"
	"google.golang.org/protobuf/proto"
)

// FuzzIssueResponse feeds arbitrary bytes, as an issuer plugin could send
// them, through the decoding of an issue reply: DER certificates, PKCS#8
// keys, JWT tokens and JWKS documents. It must never panic, and what it
// accepts must be internally consistent.
func FuzzIssueResponse(f *testing.F) {
	ca := testca.New(f, id.TrustDomain())
	svid := ca.X509SVID(f, id)
	req := hostapi.JWTRequest{Audience: "api", FileName: "t"}
	good, err := wire.CredentialsToIssueResponse(&hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{svid},
		X509Bundles: x509bundle.NewSet(ca.X509Bundle()),
		JWTSVIDs:    []hostapi.JWTSVID{{Request: req, SVID: ca.JWTSVID(f, id, []string{"api"}, time.Hour)}},
		JWTBundles:  jwtbundle.NewSet(ca.JWTBundle()),
	}, true)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := proto.Marshal(good)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0x78})
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp issuerv1.IssueResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		creds, err := wire.IssueResponseToCredentials(&resp, &hostapi.IssueRequest{JWT: []hostapi.JWTRequest{req}})
		if err != nil {
			return
		}
		for _, s := range creds.X509SVIDs {
			if len(s.Certificates) == 0 {
				t.Fatal("accepted an X509-SVID without certificates")
			}
			if got, err := x509svid.IDFromCert(s.Certificates[0]); err != nil || got != s.ID {
				t.Fatalf("accepted an X509-SVID whose leaf certifies %v (%v), not %s", got, err, s.ID)
			}
		}
	})
}

// FuzzJWTBundle feeds arbitrary JWKS documents to the JWT bundle decoding.
func FuzzJWTBundle(f *testing.F) {
	ca := testca.New(f, id.TrustDomain())
	jwks, err := ca.JWTBundle().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("example.org", jwks)
	f.Add("example.org", []byte(`{"keys":[]}`))
	f.Add("example.org", []byte(`{"keys":[{"kty":"EC","crv":"P-256","use":"jwt-svid"}]}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, td string, jwks []byte) {
		set, err := wire.JWTBundlesFromProto([]*pluginv1.JWTBundle{{TrustDomain: td, Jwks: jwks}})
		if err != nil {
			return
		}
		// What was accepted encodes again.
		if _, err := wire.JWTBundlesToProto(set); err != nil {
			t.Fatalf("an accepted JWT bundle does not encode: %v", err)
		}
	})
}
