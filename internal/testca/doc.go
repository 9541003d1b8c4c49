// Package testca mints real X.509 and JWT credentials for tests: a root CA
// (optionally with intermediates) for one trust domain, X509-SVIDs whose
// leaves carry a spiffe:// URI SAN, and JWT-SVIDs signed ES256 with a key
// published in the CA's JWT bundle. Everything it returns parses and
// verifies with go-spiffe, so tests exercise the same code paths as
// production. It is test machinery, not a public API.
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	ca := testca.New(t, td)
//	svid := ca.X509SVID(t, spiffeid.RequireFromPath(td, "/web"), testca.WithTTL(time.Hour))
//	_, _, err := x509svid.Verify(svid.Certificates, ca.X509Bundle())
//
//	token := ca.JWTSVID(t, spiffeid.RequireFromPath(td, "/web"), []string{"aud"}, time.Minute)
//	_, err = jwtsvid.ParseAndValidate(token.Marshal(), ca.JWTBundle(), []string{"aud"})
package testca
