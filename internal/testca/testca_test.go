package testca_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/testca"
)

func TestX509SVIDVerifies(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/web")
	root := testca.New(t, td)
	tests := []struct {
		name     string
		ca       *testca.CA
		chainLen int
		wantTTL  time.Duration
		opts     []testca.Option
		wantHint string
	}{
		{name: "root", ca: root, chainLen: 1, wantTTL: time.Hour},
		{name: "intermediate", ca: root.ChildCA(t), chainLen: 2, wantTTL: time.Hour},
		{name: "two intermediates", ca: root.ChildCA(t).ChildCA(t), chainLen: 3, wantTTL: time.Hour},
		{name: "options", ca: root, chainLen: 1, wantTTL: 5 * time.Minute, opts: []testca.Option{testca.WithTTL(5 * time.Minute), testca.WithHint("internal")}, wantHint: "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svid := tt.ca.X509SVID(t, id, tt.opts...)
			if len(svid.Certificates) != tt.chainLen {
				t.Fatalf("chain length = %d, want %d", len(svid.Certificates), tt.chainLen)
			}
			gotID, _, err := x509svid.Verify(svid.Certificates, root.X509Bundle())
			if err != nil {
				t.Fatalf("verifying: %v", err)
			}
			if gotID != id {
				t.Errorf("ID = %s, want %s", gotID, id)
			}
			if svid.Hint != tt.wantHint {
				t.Errorf("hint = %q, want %q", svid.Hint, tt.wantHint)
			}
			if d := time.Until(svid.Certificates[0].NotAfter); d > tt.wantTTL || d < tt.wantTTL-time.Minute {
				t.Errorf("leaf expires in %s, want about %s", d, tt.wantTTL)
			}
			// Round-trip through the wire format.
			certs, key, err := svid.MarshalRaw()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := x509svid.ParseRaw(certs, key); err != nil {
				t.Fatalf("parsing marshalled SVID: %v", err)
			}
		})
	}
}

func TestJWTSVIDValidates(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/web")
	ca := testca.New(t, td)
	aud := []string{"a", "b"}
	svid := ca.ChildCA(t).JWTSVID(t, id, aud, time.Minute)
	got, err := jwtsvid.ParseAndValidate(svid.Marshal(), ca.JWTBundle(), []string{"b"})
	if err != nil {
		t.Fatalf("validating: %v", err)
	}
	if got.ID != id || len(got.Audience) != 2 {
		t.Errorf("got ID %s audience %v, want %s %v", got.ID, got.Audience, id, aud)
	}
	other := testca.New(t, td)
	if _, err := jwtsvid.ParseAndValidate(svid.Marshal(), other.JWTBundle(), aud); err == nil {
		t.Error("token validated against another CA's bundle")
	}
}
