// Package creds holds the conversions of writers and issuers between the
// hand codec's messages (package lite) and the hostapi types: they parse
// certificates and JWTs, and link crypto/x509 and go-spiffe. A notifier
// needs none of them and does not import this package.
package creds

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk/internal/lite"
)

// CredentialSet decodes what a writer receives: every X509-SVID must
// carry its private key.
func CredentialSet(m *lite.WriteRequest) (*hostapi.CredentialSet, error) {
	svids, err := x509SVIDsFrom(m.X509SVIDs)
	if err != nil {
		return nil, err
	}
	for _, s := range svids {
		if s.PrivateKey == nil {
			return nil, fmt.Errorf("decoding write request: X509-SVID %s has no private key", s.ID)
		}
	}
	xb, err := x509BundlesFrom(m.X509Bundles)
	if err != nil {
		return nil, err
	}
	jb, err := jwtBundlesFrom(m.JWTBundles)
	if err != nil {
		return nil, err
	}
	jwts, err := jwtSVIDsFrom(m.JWTSVIDs)
	if err != nil {
		return nil, err
	}
	set := &hostapi.CredentialSet{
		Name:        m.Name,
		Credentials: hostapi.Credentials{X509SVIDs: svids, X509Bundles: xb, JWTSVIDs: jwts, JWTBundles: jb},
		Changed:     hostapi.Changes(m.Changed),
	}
	if m.TrustDomain != "" {
		td, err := spiffeid.TrustDomainFromString(m.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("decoding write request: trust_domain: %w", err)
		}
		set.TrustDomain = td
	}
	return set, nil
}

func x509SVIDsFrom(ms []lite.X509SVID) ([]*x509svid.SVID, error) {
	out := make([]*x509svid.SVID, 0, len(ms))
	for i, m := range ms {
		id, err := spiffeid.FromString(m.SpiffeID)
		if err != nil {
			return nil, fmt.Errorf("decoding X509-SVID %d: spiffe_id: %w", i, err)
		}
		if len(m.CertChain) == 0 {
			return nil, fmt.Errorf("decoding X509-SVID %s: empty certificate chain", id)
		}
		s := &x509svid.SVID{ID: id, Hint: m.Hint}
		for j, der := range m.CertChain {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("decoding X509-SVID %s: certificate %d: %w", id, j, err)
			}
			s.Certificates = append(s.Certificates, c)
		}
		leafID, err := x509svid.IDFromCert(s.Certificates[0])
		if err != nil {
			return nil, fmt.Errorf("decoding X509-SVID %s: leaf: %w", id, err)
		}
		if leafID != id {
			return nil, fmt.Errorf("decoding X509-SVID %s: the leaf certifies %s", id, leafID)
		}
		if len(m.PrivateKey) > 0 {
			k, err := x509.ParsePKCS8PrivateKey(m.PrivateKey)
			if err != nil {
				return nil, fmt.Errorf("decoding X509-SVID %s: private key: %w", id, err)
			}
			signer, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("decoding X509-SVID %s: private key %T is not a signer", id, k)
			}
			pub, ok := s.Certificates[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !pub.Equal(signer.Public()) {
				return nil, fmt.Errorf("decoding X509-SVID %s: the private key does not match the leaf", id)
			}
			s.PrivateKey = signer
		}
		out = append(out, s)
	}
	return out, nil
}

func x509BundlesFrom(ms []lite.X509Bundle) (*x509bundle.Set, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	set := x509bundle.NewSet()
	for _, m := range ms {
		td, err := spiffeid.TrustDomainFromString(m.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("decoding X.509 bundle: trust_domain: %w", err)
		}
		var certs []*x509.Certificate
		for j, der := range m.Authorities {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("decoding X.509 bundle of %s: authority %d: %w", td, j, err)
			}
			certs = append(certs, c)
		}
		set.Add(x509bundle.FromX509Authorities(td, certs))
	}
	return set, nil
}

func jwtBundlesFrom(ms []lite.JWTBundle) (*jwtbundle.Set, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	set := jwtbundle.NewSet()
	for _, m := range ms {
		td, err := spiffeid.TrustDomainFromString(m.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("decoding JWT bundle: trust_domain: %w", err)
		}
		b, err := jwtbundle.Parse(td, m.JWKS)
		if err != nil {
			return nil, fmt.Errorf("decoding JWT bundle of %s: %w", td, err)
		}
		set.Add(b)
	}
	return set, nil
}

// jwtSVIDsFrom decodes the JWT-SVIDs of a write request, parsed without
// validation (a writer trusts what the core verified).
func jwtSVIDsFrom(ms []lite.JWTSVID) ([]hostapi.JWTSVID, error) {
	out := make([]hostapi.JWTSVID, 0, len(ms))
	for i, m := range ms {
		if m.Token == "" {
			return nil, fmt.Errorf("decoding JWT-SVID %d: empty token", i)
		}
		svid, err := jwtsvid.ParseInsecure(m.Token, m.Audiences)
		if err != nil {
			return nil, fmt.Errorf("decoding JWT-SVID %d: %w", i, err)
		}
		svid.Hint = m.Hint
		req := hostapi.JWTRequest{FileName: m.FileName}
		if len(m.Audiences) > 0 {
			req.Audience, req.ExtraAudiences = m.Audiences[0], m.Audiences[1:]
		}
		out = append(out, hostapi.JWTSVID{Request: req, SVID: svid})
	}
	return out, nil
}

// IssueRequestOf decodes an issue request.
func IssueRequestOf(m *lite.IssueRequest) (*hostapi.IssueRequest, error) {
	r := &hostapi.IssueRequest{
		Hint: m.Hint, All: m.All, X509: m.X509, CSR: m.CSR,
		TTL: time.Duration(m.TTLSeconds) * time.Second, JWTBundles: m.JWTBundles,
		JWT: make([]hostapi.JWTRequest, 0, len(m.JWT)),
	}
	for _, j := range m.JWT {
		r.JWT = append(r.JWT, hostapi.JWTRequest{Audience: j.Audience, ExtraAudiences: j.ExtraAudiences, FileName: j.FileName})
	}
	if m.SpiffeID != "" {
		id, err := spiffeid.FromString(m.SpiffeID)
		if err != nil {
			return nil, fmt.Errorf("decoding issue request: spiffe_id: %w", err)
		}
		r.SPIFFEID = id
	}
	if r.X509 && len(r.CSR) == 0 {
		return nil, errors.New("decoding issue request: x509 without a csr")
	}
	return r, nil
}

// IssueResponseOf encodes an issuer's answer. Keys are included only when
// withKeys (an issuer that declares "issuer.returns_keys").
func IssueResponseOf(c *hostapi.Credentials, withKeys bool) (*lite.IssueResponse, error) {
	m := &lite.IssueResponse{}
	for _, s := range c.X509SVIDs {
		p := lite.X509SVID{SpiffeID: s.ID.String(), Hint: s.Hint}
		for _, c := range s.Certificates {
			p.CertChain = append(p.CertChain, c.Raw)
		}
		if withKeys && s.PrivateKey != nil {
			der, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
			if err != nil {
				return nil, fmt.Errorf("encoding the private key of %s: %w", s.ID, err)
			}
			p.PrivateKey = der
		}
		m.X509SVIDs = append(m.X509SVIDs, p)
	}
	if c.X509Bundles != nil {
		bundles := c.X509Bundles.Bundles()
		sort.Slice(bundles, func(i, j int) bool { return bundles[i].TrustDomain().Name() < bundles[j].TrustDomain().Name() })
		for _, b := range bundles {
			p := lite.X509Bundle{TrustDomain: b.TrustDomain().Name()}
			for _, c := range b.X509Authorities() {
				p.Authorities = append(p.Authorities, c.Raw)
			}
			m.X509Bundles = append(m.X509Bundles, p)
		}
	}
	for _, s := range c.JWTSVIDs {
		m.JWTSVIDs = append(m.JWTSVIDs, lite.JWTSVID{
			SpiffeID: s.SVID.ID.String(), Token: s.SVID.Marshal(), Audiences: s.Request.Audiences(),
			Expiry: s.SVID.Expiry.Unix(), FileName: s.Request.FileName, Hint: s.SVID.Hint,
		})
	}
	if c.JWTBundles != nil {
		bundles := c.JWTBundles.Bundles()
		sort.Slice(bundles, func(i, j int) bool { return bundles[i].TrustDomain().Name() < bundles[j].TrustDomain().Name() })
		for _, b := range bundles {
			jwks, err := b.Marshal()
			if err != nil {
				return nil, fmt.Errorf("encoding the JWT bundle of %s: %w", b.TrustDomain(), err)
			}
			m.JWTBundles = append(m.JWTBundles, lite.JWTBundle{TrustDomain: b.TrustDomain().Name(), JWKS: jwks})
		}
	}
	return m, nil
}
