package filewatch

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// dataDirName is the symlink Kubernetes' AtomicWriter swaps to publish a
// new version of a projected volume (a Secret or ConfigMap mount).
const dataDirName = "..data"

// maxResolveAttempts bounds how often a load starts again because ..data
// moved while it read.
const maxResolveAttempts = 5

// snapshot is one consistent, validated load of the directory.
type snapshot struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
	// digest identifies the content (chain, key and bundle), so that a
	// reload that changed nothing publishes nothing.
	digest [sha256.Size]byte
}

// load reads the three files once, as one set, and validates them. With a
// ..data symlink it resolves the link once, reads every file from that
// version directory, and starts again if the link moved meanwhile.
func (p *parsed) load() (*snapshot, error) {
	var lastErr error
	for range maxResolveAttempts {
		base, linked, err := resolve(p.dir)
		if err != nil {
			return nil, err
		}
		snap, err := p.loadFrom(base)
		if !linked {
			return snap, err
		}
		if after, _, rerr := resolve(p.dir); rerr == nil && after == base {
			// ..data did not move while the files were read.
			return snap, err
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("it moved on every attempt")
	}
	return nil, fmt.Errorf("reading %q through its %s symlink: %w", p.dir, dataDirName, lastErr)
}

// resolve returns the directory to read the files from: the target of
// dir/..data when that is a symlink, dir itself otherwise.
func resolve(dir string) (base string, linked bool, err error) {
	link := filepath.Join(dir, dataDirName)
	target, err := os.Readlink(link)
	switch {
	case err == nil:
		if filepath.IsAbs(target) {
			return target, true, nil
		}
		return filepath.Join(dir, target), true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EINVAL):
		// No ..data, or not a symlink: the files are in dir.
		fi, serr := os.Stat(dir)
		if serr != nil {
			return "", false, fmt.Errorf("opening the directory %q: %w; create it or fix dir", dir, serr)
		}
		if !fi.IsDir() {
			return "", false, fmt.Errorf("opening the directory %q: it is not a directory; set dir to the directory that holds the files", dir)
		}
		return dir, false, nil
	default:
		return "", false, fmt.Errorf("reading the symlink %q: %w", link, err)
	}
}

func (p *parsed) loadFrom(base string) (*snapshot, error) {
	certPath := filepath.Join(base, p.certFile)
	keyPath := filepath.Join(base, p.keyFile)
	bundlePath := filepath.Join(base, p.bundleFile)

	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate (cert_file): %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading the private key (key_file): %w", err)
	}
	bundlePEM, err := os.ReadFile(bundlePath)
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle (bundle_file): %w", err)
	}

	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate %q: %w", certPath, err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing the private key %q: %w", keyPath, err)
	}
	leaf := certs[0]
	id, err := leafID(leaf)
	if err != nil {
		return nil, fmt.Errorf("reading the SPIFFE ID of the leaf certificate in %q: %w", certPath, err)
	}
	if !keyMatches(key, leaf.PublicKey) {
		return nil, fmt.Errorf("checking the key pair: the private key in %q does not match the leaf certificate in %q; "+
			"they are from different issuances (a writer that replaces them one at a time may be midway); "+
			"the last good pair stays in use until a matching pair appears", keyPath, certPath)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key %q as PKCS#8: %w", keyPath, err)
	}
	var chain []byte
	for _, c := range certs {
		chain = append(chain, c.Raw...)
	}
	// go-spiffe's checks: the leaf is not a CA, its key usage allows
	// signatures, every further certificate is a CA.
	svid, err := x509svid.ParseRaw(chain, pkcs8)
	if err != nil {
		return nil, fmt.Errorf("checking that %q holds an X509-SVID: %w", certPath, err)
	}

	bundle, err := x509bundle.Parse(id.TrustDomain(), bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA bundle %q for trust domain %q: %w; it must hold the PEM CA certificates that sign the chain", bundlePath, id.TrustDomain().Name(), err)
	}
	if len(bundle.X509Authorities()) == 0 {
		return nil, fmt.Errorf("parsing the CA bundle %q: it holds no certificate; it may be half written, or the issuer does not publish its CA (cert-manager's ACME issuers do not)", bundlePath)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, x509bundle.NewSet(bundle)); err != nil {
		return nil, fmt.Errorf("verifying the chain in %q against the CA bundle %q: %w; the certificate may have expired, or the bundle may lack its CA", certPath, bundlePath, err)
	}

	h := sha256.New()
	h.Write(chain)
	h.Write([]byte{0})
	h.Write(pkcs8)
	h.Write([]byte{0})
	for _, c := range bundle.X509Authorities() {
		h.Write(c.Raw)
	}
	snap := &snapshot{svid: svid, bundle: bundle}
	copy(snap.digest[:], h.Sum(nil))
	return snap, nil
}

// parseCertificates parses every CERTIFICATE block of data. Any other
// content is an error: a half-written file is refused, not truncated.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		block, r := pem.Decode(rest)
		if block == nil {
			return nil, errors.New("it holds data that is not a PEM block; it may be half written")
		}
		rest = r
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("it holds a %q PEM block; cert_file must hold only CERTIFICATE blocks, the leaf first", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("it holds no certificate; it may be empty or half written")
	}
	return certs, nil
}

// parsePrivateKey parses the first key block of data: PKCS#8 ("PRIVATE
// KEY"), PKCS#1 ("RSA PRIVATE KEY", cert-manager's default for RSA) or
// SEC 1 ("EC PRIVATE KEY"). An "EC PARAMETERS" block before it, as
// openssl ecparam writes, is skipped.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		block, r := pem.Decode(rest)
		if block == nil {
			return nil, errors.New("it holds data that is not a PEM block; it may be half written")
		}
		rest = r
		if _, enc := block.Headers["Proc-Type"]; enc || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("the key is encrypted; store it unencrypted (openssl pkey -in KEY -out tls.key) and protect it with the file's mode")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("it holds a %q PEM block; key_file must hold a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the %s block: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		return signer, nil
	}
	return nil, errors.New("it holds no private key; it may be empty or half written")
}

// leafID returns the SPIFFE ID of leaf, which must have exactly one URI
// SAN, a spiffe:// one.
func leafID(leaf *x509.Certificate) (spiffeid.ID, error) {
	var spiffe int
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
		if strings.EqualFold(u.Scheme, "spiffe") {
			spiffe++
		}
	}
	switch {
	case len(leaf.URIs) == 0:
		return spiffeid.ID{}, errors.New("it has no URI SAN; an X509-SVID carries exactly one, its spiffe:// ID (with cert-manager, set uris: [\"spiffe://<trust domain>/<path>\"] on the Certificate)")
	case spiffe == 0:
		return spiffeid.ID{}, fmt.Errorf("none of its URI SANs (%s) is a spiffe:// ID; issue the certificate with exactly one URI SAN, spiffe://<trust domain>/<path>", strings.Join(uris, ", "))
	case len(leaf.URIs) > 1:
		return spiffeid.ID{}, fmt.Errorf("it has %d URI SANs (%s); an X509-SVID carries exactly one, its spiffe:// ID; issue it without the others", len(leaf.URIs), strings.Join(uris, ", "))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("its URI SAN %q is not a valid SPIFFE ID: %w", uris[0], err)
	}
	return id, nil
}

// keyMatches reports whether key is the private half of pub.
func keyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}
