package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	spiffetls "github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// Authorizer decides whether a peer whose X509-SVID verified against its
// own trust domain's bundle may connect. It is go-spiffe's
// spiffetls/tlsconfig.Authorizer, so go-spiffe's authorizers work too.
type Authorizer = spiffetls.Authorizer

// AuthorizeID accepts only the peer id.
func AuthorizeID(id spiffeid.ID) Authorizer { return spiffetls.AuthorizeID(id) }

// AuthorizeOneOf accepts the peers ids.
func AuthorizeOneOf(ids ...spiffeid.ID) Authorizer { return spiffetls.AuthorizeOneOf(ids...) }

// AuthorizeMemberOf accepts any peer of trust domain td.
func AuthorizeMemberOf(td spiffeid.TrustDomain) Authorizer { return spiffetls.AuthorizeMemberOf(td) }

// AuthorizeAny accepts any peer whose SVID verified.
func AuthorizeAny() Authorizer { return spiffetls.AuthorizeAny() }

// AuthorizeFunc accepts the peers for which allow returns true.
func AuthorizeFunc(allow func(id spiffeid.ID) bool) Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if allow == nil || !allow(id) {
			return fmt.Errorf("tlsconfig: peer %q is not authorized", id)
		}
		return nil
	}
}

// errNoAuthorizer is what a nil Authorizer answers: it denies every peer
// rather than panicking in the middle of a handshake.
var errNoAuthorizer = errors.New("tlsconfig: no authorizer configured; pass AuthorizeAny() to accept every verified peer")

func orDeny(a Authorizer) Authorizer {
	if a != nil {
		return a
	}
	return func(spiffeid.ID, [][]*x509.Certificate) error { return errNoAuthorizer }
}

// ServerConfig returns an mTLS server configuration that presents src's
// X509-SVID, requires a client X509-SVID, verifies it against the bundle of
// the client's own trust domain only, and then asks authorizer. A nil
// authorizer denies every client. Certificates and bundles come from src's
// memory at each handshake, so rotations apply to the next handshake with
// no restart and no disk I/O. MinVersion is TLS 1.3.
func ServerConfig(src *Source, authorizer Authorizer) *tls.Config {
	cfg := spiffetls.MTLSServerConfig(src, src, orDeny(authorizer))
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}

// ClientConfig returns an mTLS client configuration that presents src's
// X509-SVID and verifies the server's X509-SVID against the bundle of the
// server's own trust domain, then asks authorizer. Host names are not
// checked (SPIFFE authenticates by ID). A nil authorizer denies every
// server. MinVersion is TLS 1.3.
func ClientConfig(src *Source, authorizer Authorizer) *tls.Config {
	cfg := spiffetls.MTLSClientConfig(src, src, orDeny(authorizer))
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}
