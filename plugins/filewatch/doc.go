// Package filewatch is the issuer.files plugin: it watches a directory
// of PEM files, a certificate chain, its private key and a CA bundle, and
// republishes them to the svid block's writers and notifiers. The files
// come from cert-manager, a Kubernetes Secret mount (kubernetes.io/tls) or
// a legacy PKI; the defaults are their names: tls.crt, tls.key and ca.crt.
//
// It applies the lessons of file watchers that went wrong:
//
//   - It watches the directory, not the files (and the directory's parent,
//     so that its removal and re-creation are seen). A watch on a file is
//     lost when the file is replaced by a rename.
//   - It survives atomic renames over a file and Kubernetes' AtomicWriter,
//     which swaps a "..data" symlink to a new version directory: ..data is
//     resolved once per load and every file is read from that version, and
//     the load starts again if ..data moved meanwhile.
//   - It debounces: a burst of changes is read once, after the directory
//     has been quiet for the debounce period (at most ten periods late).
//   - It validates before publishing: the key must match the leaf, the
//     leaf must carry exactly one spiffe:// URI SAN, and the chain must
//     verify against the CA bundle. A mismatched pair (a writer that
//     rewrites the certificate, then the key, in place) is never
//     published; the last good pair stays in use and the error is
//     reported, then the load is retried.
//
// The issuer owns its keys: it ignores the core's CSR and returns the key
// it read. It serves X.509 credentials only. It is a [hostapi.Issuer] (one
// read) and a [hostapi.Watcher] (the agent uses Watch).
//
//	issuer "legacy" {
//	  type = "files"
//	  dir  = "/etc/tls"
//	}
//
// or directly:
//
//	iss, err := filewatch.New(&filewatch.Config{Dir: "/etc/tls", CertFile: "tls.crt", KeyFile: "tls.key", BundleFile: "ca.crt", Debounce: "100ms"}, logger)
//	defer iss.Close()
//	creds, err := iss.Issue(ctx, &hostapi.IssueRequest{X509: true})
package filewatch
