package wire

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
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
)

// X509SVIDsToProto encodes SVIDs; keys are included only when withKeys.
func X509SVIDsToProto(svids []*x509svid.SVID, withKeys bool) ([]*pluginv1.X509SVID, error) {
	out := make([]*pluginv1.X509SVID, 0, len(svids))
	for _, s := range svids {
		p := &pluginv1.X509SVID{SpiffeId: s.ID.String(), Hint: s.Hint}
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
		out = append(out, p)
	}
	return out, nil
}

// X509SVIDsFromProto decodes SVIDs. A key is decoded when present; a key
// that does not match its leaf is an error.
func X509SVIDsFromProto(ps []*pluginv1.X509SVID) ([]*x509svid.SVID, error) {
	out := make([]*x509svid.SVID, 0, len(ps))
	for i, p := range ps {
		id, err := spiffeid.FromString(p.GetSpiffeId())
		if err != nil {
			return nil, fmt.Errorf("decoding X509-SVID %d: spiffe_id: %w", i, err)
		}
		if len(p.GetCertChain()) == 0 {
			return nil, fmt.Errorf("decoding X509-SVID %s: empty certificate chain", id)
		}
		s := &x509svid.SVID{ID: id, Hint: p.GetHint()}
		for j, der := range p.GetCertChain() {
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
		if len(p.GetPrivateKey()) > 0 {
			k, err := x509.ParsePKCS8PrivateKey(p.GetPrivateKey())
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

// X509BundlesToProto encodes a bundle set, sorted by trust domain.
func X509BundlesToProto(set *x509bundle.Set) []*pluginv1.X509Bundle {
	if set == nil {
		return nil
	}
	bundles := set.Bundles()
	sort.Slice(bundles, func(i, j int) bool { return bundles[i].TrustDomain().Name() < bundles[j].TrustDomain().Name() })
	out := make([]*pluginv1.X509Bundle, 0, len(bundles))
	for _, b := range bundles {
		p := &pluginv1.X509Bundle{TrustDomain: b.TrustDomain().Name()}
		for _, c := range b.X509Authorities() {
			p.Authorities = append(p.Authorities, c.Raw)
		}
		out = append(out, p)
	}
	return out
}

// X509BundlesFromProto decodes bundles; none gives nil.
func X509BundlesFromProto(ps []*pluginv1.X509Bundle) (*x509bundle.Set, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	set := x509bundle.NewSet()
	for _, p := range ps {
		td, err := spiffeid.TrustDomainFromString(p.GetTrustDomain())
		if err != nil {
			return nil, fmt.Errorf("decoding X.509 bundle: trust_domain: %w", err)
		}
		var certs []*x509.Certificate
		for j, der := range p.GetAuthorities() {
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

// JWTBundlesToProto encodes a JWT bundle set, sorted by trust domain.
func JWTBundlesToProto(set *jwtbundle.Set) ([]*pluginv1.JWTBundle, error) {
	if set == nil {
		return nil, nil
	}
	bundles := set.Bundles()
	sort.Slice(bundles, func(i, j int) bool { return bundles[i].TrustDomain().Name() < bundles[j].TrustDomain().Name() })
	out := make([]*pluginv1.JWTBundle, 0, len(bundles))
	for _, b := range bundles {
		jwks, err := b.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encoding the JWT bundle of %s: %w", b.TrustDomain(), err)
		}
		out = append(out, &pluginv1.JWTBundle{TrustDomain: b.TrustDomain().Name(), Jwks: jwks})
	}
	return out, nil
}

// JWTBundlesFromProto decodes JWT bundles; none gives nil.
func JWTBundlesFromProto(ps []*pluginv1.JWTBundle) (*jwtbundle.Set, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	set := jwtbundle.NewSet()
	for _, p := range ps {
		td, err := spiffeid.TrustDomainFromString(p.GetTrustDomain())
		if err != nil {
			return nil, fmt.Errorf("decoding JWT bundle: trust_domain: %w", err)
		}
		b, err := jwtbundle.Parse(td, p.GetJwks())
		if err != nil {
			return nil, fmt.Errorf("decoding JWT bundle of %s: %w", td, err)
		}
		set.Add(b)
	}
	return set, nil
}

// JWTRequestsToProto encodes JWT requests.
func JWTRequestsToProto(rs []hostapi.JWTRequest) []*issuerv1.JWTRequest {
	out := make([]*issuerv1.JWTRequest, 0, len(rs))
	for _, r := range rs {
		out = append(out, &issuerv1.JWTRequest{Audience: r.Audience, ExtraAudiences: r.ExtraAudiences, FileName: r.FileName})
	}
	return out
}

// JWTRequestsFromProto decodes JWT requests.
func JWTRequestsFromProto(ps []*issuerv1.JWTRequest) []hostapi.JWTRequest {
	out := make([]hostapi.JWTRequest, 0, len(ps))
	for _, p := range ps {
		out = append(out, hostapi.JWTRequest{Audience: p.GetAudience(), ExtraAudiences: p.GetExtraAudiences(), FileName: p.GetFileName()})
	}
	return out
}

// JWTSVIDsToProto encodes JWT-SVIDs, with their tokens.
func JWTSVIDsToProto(svids []hostapi.JWTSVID) []*pluginv1.JWTSVID {
	out := make([]*pluginv1.JWTSVID, 0, len(svids))
	for _, s := range svids {
		out = append(out, &pluginv1.JWTSVID{
			SpiffeId:  s.SVID.ID.String(),
			Token:     s.SVID.Marshal(),
			Audiences: s.Request.Audiences(),
			Expiry:    s.SVID.Expiry.Unix(),
			FileName:  s.Request.FileName,
			Hint:      s.SVID.Hint,
		})
	}
	return out
}

// JWTSVIDsFromProto decodes JWT-SVIDs. Tokens are validated against
// bundles when bundles is not nil, and parsed without validation otherwise
// (a writer trusts what the core verified). The request of each is matched
// from reqs by file name, falling back to the token's audiences.
func JWTSVIDsFromProto(ps []*pluginv1.JWTSVID, bundles jwtbundle.Source, reqs []hostapi.JWTRequest) ([]hostapi.JWTSVID, error) {
	out := make([]hostapi.JWTSVID, 0, len(ps))
	for i, p := range ps {
		if p.GetToken() == "" {
			return nil, fmt.Errorf("decoding JWT-SVID %d: empty token", i)
		}
		aud := p.GetAudiences()
		var svid *jwtsvid.SVID
		var err error
		if bundles != nil {
			svid, err = jwtsvid.ParseAndValidate(p.GetToken(), bundles, aud)
		} else {
			svid, err = jwtsvid.ParseInsecure(p.GetToken(), aud)
		}
		if err != nil {
			return nil, fmt.Errorf("decoding JWT-SVID %d: %w", i, err)
		}
		svid.Hint = p.GetHint()
		req := hostapi.JWTRequest{FileName: p.GetFileName()}
		if len(aud) > 0 {
			req.Audience, req.ExtraAudiences = aud[0], aud[1:]
		}
		for _, r := range reqs {
			if (r.FileName != "" && r.FileName == p.GetFileName()) || r.Key() == req.Key() {
				req = r
				break
			}
		}
		out = append(out, hostapi.JWTSVID{Request: req, SVID: svid})
	}
	return out, nil
}

// IssueRequestToProto encodes an issue request.
func IssueRequestToProto(r *hostapi.IssueRequest) *issuerv1.IssueRequest {
	p := &issuerv1.IssueRequest{
		Hint: r.Hint, All: r.All, X509: r.X509, Csr: r.CSR,
		TtlSeconds: int64(r.TTL / time.Second), Jwt: JWTRequestsToProto(r.JWT), JwtBundles: r.JWTBundles,
	}
	if !r.SPIFFEID.IsZero() {
		p.SpiffeId = r.SPIFFEID.String()
	}
	return p
}

// IssueRequestFromProto decodes an issue request.
func IssueRequestFromProto(p *issuerv1.IssueRequest) (*hostapi.IssueRequest, error) {
	r := &hostapi.IssueRequest{
		Hint: p.GetHint(), All: p.GetAll(), X509: p.GetX509(), CSR: p.GetCsr(),
		TTL: time.Duration(p.GetTtlSeconds()) * time.Second, JWT: JWTRequestsFromProto(p.GetJwt()), JWTBundles: p.GetJwtBundles(),
	}
	if p.GetSpiffeId() != "" {
		id, err := spiffeid.FromString(p.GetSpiffeId())
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

// CredentialsToIssueResponse encodes an issuer's answer. Keys are included
// only when withKeys (an issuer that declares "issuer.returns_keys").
func CredentialsToIssueResponse(c *hostapi.Credentials, withKeys bool) (*issuerv1.IssueResponse, error) {
	svids, err := X509SVIDsToProto(c.X509SVIDs, withKeys)
	if err != nil {
		return nil, err
	}
	jb, err := JWTBundlesToProto(c.JWTBundles)
	if err != nil {
		return nil, err
	}
	return &issuerv1.IssueResponse{
		X509Svids: svids, X509Bundles: X509BundlesToProto(c.X509Bundles),
		JwtSvids: JWTSVIDsToProto(c.JWTSVIDs), JwtBundles: jb,
	}, nil
}

// IssueResponseToCredentials decodes an issuer's answer to req. JWT-SVIDs
// are validated against the JWT bundles the answer carries, when it carries
// any.
func IssueResponseToCredentials(p *issuerv1.IssueResponse, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	svids, err := X509SVIDsFromProto(p.GetX509Svids())
	if err != nil {
		return nil, err
	}
	xb, err := X509BundlesFromProto(p.GetX509Bundles())
	if err != nil {
		return nil, err
	}
	jb, err := JWTBundlesFromProto(p.GetJwtBundles())
	if err != nil {
		return nil, err
	}
	var src jwtbundle.Source
	if jb != nil {
		src = jb
	}
	jwts, err := JWTSVIDsFromProto(p.GetJwtSvids(), src, req.JWT)
	if err != nil {
		return nil, err
	}
	c := &hostapi.Credentials{X509SVIDs: svids, X509Bundles: xb, JWTBundles: jb}
	if len(jwts) > 0 {
		c.JWTSVIDs = jwts
	}
	return c, nil
}

// CredentialSetToProto encodes what a writer receives, keys included.
func CredentialSetToProto(s *hostapi.CredentialSet) (*writerv1.WriteRequest, error) {
	svids, err := X509SVIDsToProto(s.X509SVIDs, true)
	if err != nil {
		return nil, err
	}
	jb, err := JWTBundlesToProto(s.JWTBundles)
	if err != nil {
		return nil, err
	}
	return &writerv1.WriteRequest{
		Name: s.Name, TrustDomain: s.TrustDomain.Name(),
		X509Svids: svids, X509Bundles: X509BundlesToProto(s.X509Bundles),
		JwtSvids: JWTSVIDsToProto(s.JWTSVIDs), JwtBundles: jb, Changed: uint32(s.Changed),
	}, nil
}

// CredentialSetFromProto decodes what a writer receives.
func CredentialSetFromProto(p *writerv1.WriteRequest) (*hostapi.CredentialSet, error) {
	svids, err := X509SVIDsFromProto(p.GetX509Svids())
	if err != nil {
		return nil, err
	}
	for _, s := range svids {
		if s.PrivateKey == nil {
			return nil, fmt.Errorf("decoding write request: X509-SVID %s has no private key", s.ID)
		}
	}
	xb, err := X509BundlesFromProto(p.GetX509Bundles())
	if err != nil {
		return nil, err
	}
	jb, err := JWTBundlesFromProto(p.GetJwtBundles())
	if err != nil {
		return nil, err
	}
	jwts, err := JWTSVIDsFromProto(p.GetJwtSvids(), nil, nil)
	if err != nil {
		return nil, err
	}
	set := &hostapi.CredentialSet{
		Name:        p.GetName(),
		Credentials: hostapi.Credentials{X509SVIDs: svids, X509Bundles: xb, JWTSVIDs: jwts, JWTBundles: jb},
		Changed:     hostapi.Changes(p.GetChanged()),
	}
	if p.GetTrustDomain() != "" {
		td, err := spiffeid.TrustDomainFromString(p.GetTrustDomain())
		if err != nil {
			return nil, fmt.Errorf("decoding write request: trust_domain: %w", err)
		}
		set.TrustDomain = td
	}
	return set, nil
}

// RotationEventToProto encodes a notification. It carries no key material
// and no tokens by construction: RotationEvent has none.
func RotationEventToProto(ev *hostapi.RotationEvent) *notifierv1.NotifyRequest {
	p := &notifierv1.NotifyRequest{
		Name: ev.Name, Reason: uint32(ev.Reason), Initial: ev.Initial,
		TimeUnixNano: ev.Time.UnixNano(), Paths: ev.Paths,
	}
	for _, x := range ev.X509 {
		p.X509 = append(p.X509, &notifierv1.X509Identity{
			SpiffeId: x.SPIFFEID, Serial: x.Serial, NotBefore: x.NotBefore.Unix(), NotAfter: x.NotAfter.Unix(), Hint: x.Hint,
		})
	}
	for _, j := range ev.JWT {
		p.Jwt = append(p.Jwt, &notifierv1.JWTIdentity{SpiffeId: j.SPIFFEID, Audiences: j.Audiences, Expiry: j.Expiry.Unix(), FileName: j.FileName})
	}
	return p
}

// RotationEventFromProto decodes a notification.
func RotationEventFromProto(p *notifierv1.NotifyRequest) *hostapi.RotationEvent {
	ev := &hostapi.RotationEvent{
		Name: p.GetName(), Reason: hostapi.Changes(p.GetReason()), Initial: p.GetInitial(),
		Time: time.Unix(0, p.GetTimeUnixNano()), Paths: p.GetPaths(),
	}
	for _, x := range p.GetX509() {
		ev.X509 = append(ev.X509, hostapi.X509Identity{
			SPIFFEID: x.GetSpiffeId(), Serial: x.GetSerial(),
			NotBefore: time.Unix(x.GetNotBefore(), 0), NotAfter: time.Unix(x.GetNotAfter(), 0), Hint: x.GetHint(),
		})
	}
	for _, j := range p.GetJwt() {
		ev.JWT = append(ev.JWT, hostapi.JWTIdentity{SPIFFEID: j.GetSpiffeId(), Audiences: j.GetAudiences(), Expiry: time.Unix(j.GetExpiry(), 0), FileName: j.GetFileName()})
	}
	return ev
}
