// Package tlsconfig is the library Go services use to consume the
// credentials svidagent writes to disk: it watches the credential folder,
// keeps the latest valid X509-SVID and trust bundles in memory, and builds
// mTLS *tls.Config values whose certificate and trust bundles hot-reload,
// with no disk I/O per handshake.
//
// It reads three layouts: spiffe-helper's flat files, the same files behind
// a Kubernetes-style "..data" symlink (read through one resolution of
// ..data, so never a mixed set), and the SPIFFE Filesystem Delivery draft
// in every published revision ([Revision], auto-detected from the names
// present or pinned with [WithRevision]; the application side: the folder
// from [WithDir] or else SPIFFE_CREDENTIAL_FOLDER, the credential bundle
// read in one open/read/close, one trust bundle per trust domain, never
// pooled, de-federation when a trust bundle file disappears, and every
// MUST NOT of the draft a load error naming the file and byte offset).
//
//	src, err := tlsconfig.NewSource(ctx) // $SPIFFE_CREDENTIAL_FOLDER
//	if err != nil { ... }
//	defer src.Close()
//	srv := &http.Server{TLSConfig: tlsconfig.ServerConfig(src,
//		tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString("example.org")))}
//	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsconfig.ClientConfig(src,
//		tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/api")))}}
//
// [Source] implements go-spiffe's x509svid.Source and x509bundle.Source, so
// it also plugs into go-spiffe's spiffetls and spiffegrpc packages.
//
// The package never logs unless given a logger ([WithLogger]); a failed
// reload is reported by [Source.Err] and keeps the previous credentials.
package tlsconfig
