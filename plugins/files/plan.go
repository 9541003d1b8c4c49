package files

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
)

// Names used by the spiffe-fs layout (newest revision) and
// bundle_per_trust_domain. SPIFFEFSRevisions lists every revision's names.
const (
	// CredentialBundleName is the spiffe-fs credential bundle's file name
	// in the newest draft revision.
	CredentialBundleName = "credential-bundle.private-key.x509.pem"
	// TrustBundleSuffix ends a spiffe-fs trust bundle's file name in the
	// newest draft revision: "<trust-domain>.spiffe-trust-bundle.x509.pem".
	TrustBundleSuffix = ".spiffe-trust-bundle.x509.pem"
	// HintsFileName is the newest spiffe-fs layout's index of the SVIDs
	// in the folder, as spiffe/spiffefs writes it.
	HintsFileName = "hints.json"
	// PerTrustDomainSuffix ends a bundle_per_trust_domain file's name:
	// "<trust-domain>.bundle.pem".
	PerTrustDomainSuffix = ".bundle.pem"
)

// IndexedName returns the name the i-th X509-SVID's file gets when a set
// holds several: name itself for i == 0, otherwise name with "_<i>"
// inserted before its extension (the part from the last dot), or appended
// when it has none: IndexedName("svid_key.pem", 2) is "svid_key_2.pem",
// IndexedName("tls", 1) is "tls_1".
func IndexedName(name string, i int) string {
	if i == 0 {
		return name
	}
	ext := filepath.Ext(name)
	if ext == name { // ".pem": a dot file with no base
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + "_" + strconv.Itoa(i) + ext
}

// planFlat returns the files of the flat and data layouts, in write order:
//
//  1. the per-trust-domain bundles (bundle_per_trust_domain), by trust domain;
//  2. for each X509-SVID: bundle, SVID, key, combined;
//  3. the JWT bundle;
//  4. the JWT-SVIDs, in request order.
//
// Bundles go first so that a reader trusts a new CA before it can see a
// leaf signed by it; the SVID goes before its key because the usual reader
// (tls.LoadX509KeyPair, nginx, envoy) opens the certificate first, and for
// such a reader cert-then-key writing leaves the smallest window for a
// mismatched pair (see README "Flat layout and torn reads").
func (w *Writer) planFlat(set *hostapi.CredentialSet) ([]entry, error) {
	c := &w.cfg
	now := time.Now()
	var out []entry

	if len(set.X509SVIDs) > 0 {
		if set.X509Bundles == nil {
			return nil, fmt.Errorf("delivering X509-SVIDs: the set has no X.509 bundles")
		}
		if c.BundlePerTrustDomain {
			for _, b := range set.X509Bundles.Bundles() {
				out = append(out, entry{
					name: b.TrustDomain().Name() + PerTrustDomainSuffix,
					data: encodeCerts(b.X509Authorities(), c.OmitExpired, now),
					mode: fs.FileMode(c.CertFileMode),
				})
			}
		}
		for i, svid := range set.X509SVIDs {
			td := svid.ID.TrustDomain()
			if i == 0 && !set.TrustDomain.IsZero() {
				td = set.TrustDomain
			}
			key, err := marshalKey(svid)
			if err != nil {
				return nil, err
			}
			if len(svid.Certificates) == 0 {
				return nil, fmt.Errorf("encoding X509-SVID %q: it has no certificates", svid.ID)
			}
			bundle, err := svidBundle(set.X509Bundles, td, svid, c.AddIntermediatesToBundle, c.IncludeFederatedDomains)
			if err != nil {
				return nil, err
			}
			certs := svid.Certificates
			if c.AddIntermediatesToBundle {
				certs = certs[:1]
			}
			out = append(out,
				entry{name: IndexedName(c.SVIDBundleFileName, i), data: encodeCerts(bundle, c.OmitExpired, now), mode: fs.FileMode(c.CertFileMode)},
				entry{name: IndexedName(c.SVIDFileName, i), data: encodeCerts(certs, c.OmitExpired, now), mode: fs.FileMode(c.CertFileMode)},
				entry{name: IndexedName(c.SVIDKeyFileName, i), data: key, mode: fs.FileMode(c.KeyFileMode)},
			)
			if c.CombinedFileName != "" {
				combined := append(append([]byte(nil), key...), encodeCerts(svid.Certificates, false, now)...)
				out = append(out, entry{name: IndexedName(c.CombinedFileName, i), data: combined, mode: fs.FileMode(c.KeyFileMode)})
			}
		}
	}

	jwt, err := w.planJWT(set)
	if err != nil {
		return nil, err
	}
	out = append(out, jwt...)
	if err := checkUnique(out); err != nil {
		return nil, err
	}
	return out, nil
}

// planJWT returns the JWT bundle file (when configured and the set has JWT
// bundles) and the JWT-SVID files.
func (w *Writer) planJWT(set *hostapi.CredentialSet) ([]entry, error) {
	c := &w.cfg
	var out []entry
	if c.JWTBundleFileName != "" && set.JWTBundles != nil {
		data, err := encodeJWTBundles(set)
		if err != nil {
			return nil, err
		}
		out = append(out, entry{name: c.JWTBundleFileName, data: data, mode: fs.FileMode(c.JWTBundleFileMode)})
	}
	for _, j := range set.JWTSVIDs {
		if j.SVID == nil {
			return nil, fmt.Errorf("delivering JWT-SVID %q: the set has no token for it", j.Request.FileName)
		}
		if msg := checkName(j.Request.FileName); msg != "" {
			return nil, fmt.Errorf("delivering JWT-SVID for audience %q: %s", j.Request.Audience, msg)
		}
		// spiffe-helper writes the bare token, with no trailing newline.
		out = append(out, entry{name: j.Request.FileName, data: []byte(j.SVID.Marshal()), mode: fs.FileMode(c.JWTSVIDFileMode)})
	}
	return out, nil
}

// svidBundle returns the bundle file's certificates in spiffe-helper's
// order: td's authorities, then (add_intermediates_to_bundle) the SVID's
// intermediates, then (include_federated_domains) every other trust
// domain's authorities, by trust domain name.
func svidBundle(set *x509bundle.Set, td spiffeid.TrustDomain, svid *x509svid.SVID, addIntermediates, federated bool) ([]*x509.Certificate, error) {
	b, ok := set.Get(td)
	if !ok {
		return nil, fmt.Errorf("finding the bundle of trust domain %q: the set has none; check that the issuer serves it", td)
	}
	certs := b.X509Authorities()
	if addIntermediates {
		certs = append(certs, svid.Certificates[1:]...)
	}
	if federated {
		for _, fb := range set.Bundles() {
			if fb.TrustDomain() != td {
				certs = append(certs, fb.X509Authorities()...)
			}
		}
	}
	return certs, nil
}

// encodeCerts returns certs as concatenated CERTIFICATE PEM blocks with no
// headers. With omitExpired, certificates whose NotAfter is before now are
// left out, as spiffe-helper's omit_expired does.
func encodeCerts(certs []*x509.Certificate, omitExpired bool, now time.Time) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		if omitExpired && c.NotAfter.Before(now) {
			continue
		}
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// marshalKey returns svid's private key as a PKCS#8 PRIVATE KEY PEM block.
func marshalKey(svid *x509svid.SVID) ([]byte, error) {
	if svid.PrivateKey == nil {
		return nil, fmt.Errorf("encoding the key of X509-SVID %q: it has no private key", svid.ID)
	}
	der, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("encoding the key of X509-SVID %q: %w", svid.ID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// encodeJWTBundles returns spiffe-helper's JWT bundle file: a JSON object
// mapping each trust domain's name to the standard base64 encoding of its
// JWKS JSON document. encoding/json sorts the keys.
func encodeJWTBundles(set *hostapi.CredentialSet) ([]byte, error) {
	m := map[string]string{}
	for _, b := range set.JWTBundles.Bundles() {
		jwks, err := b.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encoding the JWT bundle of %q: %w", b.TrustDomain(), err)
		}
		m[b.TrustDomain().Name()] = base64.StdEncoding.EncodeToString(jwks)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the JWT bundles: %w", err)
	}
	return data, nil
}

// checkUnique fails when two entries would write the same path.
func checkUnique(entries []entry) error {
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		p := e.path()
		if seen[p] {
			return fmt.Errorf("planning files: %q would be written twice; rename one of the files (svid_file_name, jwt_svids file names, ...) so that every name is distinct", e.name)
		}
		seen[p] = true
	}
	return nil
}
