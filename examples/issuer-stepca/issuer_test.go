package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fixtures writes a root and a provisioner key (private and public).
func fixtures(t *testing.T) (root, priv, pub string, key *ecdsa.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(dir, "root.crt")
	os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	jwk := jose.JSONWebKey{Key: k, KeyID: "kid1", Algorithm: "ES256"}
	b, _ := jwk.MarshalJSON()
	priv = filepath.Join(dir, "priv.json")
	os.WriteFile(priv, b, 0o600)
	b, _ = jwk.Public().MarshalJSON()
	pub = filepath.Join(dir, "pub.json")
	os.WriteFile(pub, b, 0o600)
	return root, priv, pub, k
}

func TestValidate(t *testing.T) {
	root, priv, pub, _ := fixtures(t)
	cfg := func(m map[string]string) string { b, _ := json.Marshal(m); return string(b) }
	good := map[string]string{"ca_url": "https://127.0.0.1:9000", "root": root, "provisioner": "p", "provisioner_key_file": priv}
	with := func(k, v string) string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return cfg(m)
	}
	tests := []struct {
		name, cfg string
		fields    []string
	}{
		{"good", cfg(good), nil},
		{"ttl", with("ttl", "1h"), nil},
		{"empty", `{}`, []string{"ca_url", "root", "provisioner", "provisioner_key_file"}},
		{"http url", with("ca_url", "http://ca:9000"), []string{"ca_url"}},
		{"public key", with("provisioner_key_file", pub), []string{"provisioner_key_file"}},
		{"root not pem", with("root", priv), []string{"root"}},
		{"bad ttl", with("ttl", "soon"), []string{"ttl"}},
		{"unknown", with("roots", "x"), []string{"roots"}},
		{"not json", `[`, []string{""}},
	}
	iss := &issuer{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range iss.Validate([]byte(tt.cfg)) {
				got = append(got, e.Field)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("problems in %v, want %v", got, tt.fields)
			}
		})
	}
}

// TestToken checks the one-time token's header and claims against what
// step-ca's JWK provisioner verifies.
func TestToken(t *testing.T) {
	root, priv, _, key := fixtures(t)
	b, _ := json.Marshal(map[string]string{"ca_url": "https://ca.example.org:9000/", "root": root, "provisioner": "svidagent", "provisioner_key_file": priv})
	st, es := load(b)
	if len(es) > 0 {
		t.Fatal(es)
	}
	now := time.Now()
	id := "spiffe://example.org/web"
	tok, err := st.token(id, []string{id}, now)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if h := parsed.Headers[0]; h.KeyID != "kid1" || h.ExtraHeaders["typ"] != "JWT" {
		t.Errorf("header kid %q typ %v, want kid1 and JWT", h.KeyID, h.ExtraHeaders["typ"])
	}
	var c ottClaims
	if err := parsed.Claims(key.Public(), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: "svidagent", Subject: id,
		AnyAudience: jwt.Audience{"https://ca.example.org:9000/1.0/sign"}, Time: now}, 0); err != nil {
		t.Error(err)
	}
	if fmt.Sprint(c.SANs) != "["+id+"]" || c.SHA != st.rootSHA || len(c.SHA) != 64 || c.ID == "" {
		t.Errorf("sans %v sha %q jti %q", c.SANs, c.SHA, c.ID)
	}
	if got := c.Expiry.Time().Sub(c.NotBefore.Time()); got != ottLifetime {
		t.Errorf("token valid for %s, want %s", got, ottLifetime)
	}
	tok2, _ := st.token(id, []string{id}, now)
	if p2, _ := jwt.ParseSigned(tok2, []jose.SignatureAlgorithm{jose.ES256}); p2 != nil {
		var c2 ottClaims
		_ = p2.Claims(key.Public(), &c2)
		if c2.ID == c.ID {
			t.Error("two tokens share a jti; step-ca refuses a reused token")
		}
	}
}
