// Package files is the built-in writer "writer.files": it delivers a
// credential set to a directory as PEM and JSON files, in one of three
// layouts:
//
//   - "flat": spiffe-helper's files (svid.pem, svid_key.pem,
//     svid_bundle.pem, JWT files), byte for byte, each replaced
//     atomically and the whole set rolled back if any replacement fails;
//   - "data": the same files behind a "..data" symlink swapped atomically,
//     as Kubernetes' AtomicWriter does, so that a reader resolving "..data"
//     once sees a consistent set;
//   - "spiffe-fs": the SPIFFE Filesystem Delivery draft's credential
//     folder in its newest revision, laid out as spiffe/spiffefs does
//     (".x509.pem" names, "<i>."-prefixed further SVIDs, hints.json);
//     "spiffe-fs-2026-08-13" and "spiffe-fs-2026-02" pin earlier
//     revisions' names (SPIFFEFSRevisions). No layout ever writes an empty
//     trust bundle file.
//
// Every file has its configured mode from the moment it exists, whatever
// the umask, and the mode is applied again on every write.
//
// The agent builds the writer from configuration through the registry; a
// program can also use it directly:
//
//	cfg := files.DefaultConfig()
//	cfg.Dir = "/run/svid"
//	cfg.Layout = files.LayoutData
//	w, err := files.New(cfg, logger)
//	if err != nil {
//		return err
//	}
//	res, err := w.Write(ctx, set) // res.Paths lists the files written
//
// See README.md for every option and the exact file formats.
package files
