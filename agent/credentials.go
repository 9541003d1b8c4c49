package agent

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
)

// newKeyAndCSR generates the key for a signing issuer's request. The key
// never leaves the agent: only the CSR is handed to the issuer.
func newKeyAndCSR(id spiffeid.ID) (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{}}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate request: %w", err)
	}
	return key, csr, nil
}

// selectX509 picks the SVIDs an svid block asks for among those the
// issuer returned, by the rules of hostapi.X509Index.
func selectX509(offered []*x509svid.SVID, id spiffeid.ID, hint string, all bool) ([]*x509svid.SVID, error) {
	svids, err := hostapi.SelectX509(offered, &hostapi.IssueRequest{SPIFFEID: id, Hint: hint, All: all})
	if err != nil {
		return nil, fmt.Errorf("selecting identity from what the issuer returned: %w", err)
	}
	return svids, nil
}

// attachKey gives key to each SVID that came back without one (a signing
// issuer answers with the chain only), after checking that the leaf
// certifies that very key.
func attachKey(svids []*x509svid.SVID, key crypto.Signer) ([]*x509svid.SVID, error) {
	out := make([]*x509svid.SVID, len(svids))
	for i, s := range svids {
		if len(s.Certificates) == 0 {
			return nil, fmt.Errorf("checking X509-SVID %s: empty certificate chain", s.ID)
		}
		c := *s
		if c.PrivateKey == nil {
			if key == nil {
				return nil, fmt.Errorf("checking X509-SVID %s: the issuer returned no private key and none was requested", s.ID)
			}
			c.PrivateKey = key
		}
		if !publicKeysEqual(c.Certificates[0].PublicKey, c.PrivateKey.Public()) {
			return nil, fmt.Errorf("checking X509-SVID %s: the certificate's public key does not match the private key", s.ID)
		}
		out[i] = &c
	}
	return out, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// verifyX509 checks every chain against its trust domain's bundle before
// anything is written.
func verifyX509(svids []*x509svid.SVID, bundles *x509bundle.Set) error {
	if bundles == nil {
		return errors.New("verifying X509-SVIDs: no X.509 bundle")
	}
	for _, s := range svids {
		if _, _, err := x509svid.Verify(s.Certificates, bundles); err != nil {
			return fmt.Errorf("verifying X509-SVID %s against its trust bundle: %w", s.ID, err)
		}
	}
	return nil
}

func sameX509SVIDs(a, b []*x509svid.SVID) bool {
	return slices.EqualFunc(a, b, func(x, y *x509svid.SVID) bool {
		if x.ID != y.ID || x.Hint != y.Hint || len(x.Certificates) != len(y.Certificates) {
			return false
		}
		for i := range x.Certificates {
			if !bytes.Equal(x.Certificates[i].Raw, y.Certificates[i].Raw) {
				return false
			}
		}
		return true
	})
}

func sameX509Bundles(a, b *x509bundle.Set) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Len() != b.Len() {
		return false
	}
	for _, ab := range a.Bundles() {
		bb, ok := b.Get(ab.TrustDomain())
		if !ok || !ab.Equal(bb) {
			return false
		}
	}
	return true
}

func sameJWTBundles(a, b *jwtbundle.Set) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Len() != b.Len() {
		return false
	}
	for _, ab := range a.Bundles() {
		bb, ok := b.Get(ab.TrustDomain())
		if !ok || !ab.Equal(bb) {
			return false
		}
	}
	return true
}

// serialHex formats a certificate serial the way the log, the event and
// status carry it: as openssl prints it, two lowercase hex digits a byte,
// so a leading zero stays.
func serialHex(c *x509.Certificate) string {
	s := hex.EncodeToString(c.SerialNumber.Bytes())
	if c.SerialNumber.Sign() < 0 {
		s = "-" + s
	}
	return s
}

func x509Identities(svids []*x509svid.SVID) []hostapi.X509Identity {
	out := make([]hostapi.X509Identity, 0, len(svids))
	for _, s := range svids {
		leaf := s.Certificates[0]
		out = append(out, hostapi.X509Identity{
			SPIFFEID:  s.ID.String(),
			Serial:    serialHex(leaf),
			NotBefore: leaf.NotBefore,
			NotAfter:  leaf.NotAfter,
			Hint:      s.Hint,
		})
	}
	return out
}

func jwtIdentities(svids []hostapi.JWTSVID) []hostapi.JWTIdentity {
	out := make([]hostapi.JWTIdentity, 0, len(svids))
	for _, s := range svids {
		out = append(out, hostapi.JWTIdentity{
			SPIFFEID:  s.SVID.ID.String(),
			Audiences: s.Request.Audiences(),
			Expiry:    s.SVID.Expiry,
			FileName:  s.Request.FileName,
		})
	}
	return out
}
