package files

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
)

// SPIFFEFSRevision is the file naming of one revision of the SPIFFE
// Filesystem Delivery draft (spiffe/spiffe PR #376).
type SPIFFEFSRevision struct {
	// Layout is the writer's layout value that selects the revision.
	Layout string
	// CredentialBundle is the credential bundle's file name.
	CredentialBundle string
	// TrustBundleSuffix follows the trust domain name in a trust bundle's
	// file name.
	TrustBundleSuffix string
	// Indexed puts the i-th further X509-SVID in the same folder as
	// "<i>.<CredentialBundle>" and writes HintsFileName, as spiffe/spiffefs
	// does; otherwise the i-th further SVID gets its own folder "svid_<i>".
	Indexed bool
}

// SPIFFEFSRevisions lists the revisions the writer can lay out, newest
// first.
var SPIFFEFSRevisions = []SPIFFEFSRevision{
	{Layout: LayoutSPIFFEFS, CredentialBundle: CredentialBundleName, TrustBundleSuffix: TrustBundleSuffix, Indexed: true},
	{Layout: LayoutSPIFFEFS202608, CredentialBundle: "credential-bundle.private-key.pem", TrustBundleSuffix: ".spiffe-trust-bundle.pem"},
	{Layout: LayoutSPIFFEFS202602, CredentialBundle: "credential-bundle.pem", TrustBundleSuffix: ".spiffe-trust-bundle.pem"},
}

func spiffeFSRevision(layout string) (SPIFFEFSRevision, bool) {
	for _, r := range SPIFFEFSRevisions {
		if r.Layout == layout {
			return r, true
		}
	}
	return SPIFFEFSRevision{}, false
}

// SPIFFEFSFolder returns the credential folder of the i-th X509-SVID in a
// pinned (non-indexed) spiffe-fs revision: dir itself for the first,
// dir/svid_<i> for the others.
func SPIFFEFSFolder(dir string, i int) string {
	if i == 0 {
		return dir
	}
	return filepath.Join(dir, "svid_"+strconv.Itoa(i))
}

// CredentialBundleFileName returns the newest layout's name for the i-th
// X509-SVID's credential bundle: the bare name for the first,
// "<i>.<name>" for the others, as spiffe/spiffefs names them.
func CredentialBundleFileName(i int) string {
	if i == 0 {
		return CredentialBundleName
	}
	return strconv.Itoa(i) + "." + CredentialBundleName
}

// isIndexedCredentialBundle reports whether name is "<i>.<name>" with i ≥ 1
// written without leading zeros: a file this writer may have written.
func isIndexedCredentialBundle(name string) bool {
	prefix, ok := strings.CutSuffix(name, "."+CredentialBundleName)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(prefix)
	return err == nil && i >= 1 && strconv.Itoa(i) == prefix
}

// hint is one entry of hints.json; the field order is spiffe/spiffefs'.
type hint struct {
	Hint        string `json:"hint"`
	ID          int    `json:"id"`
	Fingerprint string `json:"fingerprint"`
}

// encodeHints returns hints.json as spiffe/spiffefs writes it: every SVID,
// by ascending id, indented by two spaces, ending in a newline.
func encodeHints(svids []*x509svid.SVID) ([]byte, error) {
	doc := struct {
		Hints []hint `json:"hints"`
	}{Hints: make([]hint, 0, len(svids))}
	for i, s := range svids {
		doc.Hints = append(doc.Hints, hint{Hint: s.Hint, ID: i, Fingerprint: Fingerprint(s.Certificates[0])})
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", HintsFileName, err)
	}
	return append(out, '\n'), nil
}

// Fingerprint returns hints.json's fingerprint of a certificate: "sha256:"
// then the SHA-256 of its DER as upper-case hex byte pairs joined by ":",
// as `openssl x509 -noout -fingerprint -sha256` prints it.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	pairs := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		pairs = append(pairs, h[i:i+2])
	}
	return "sha256:" + strings.Join(pairs, ":")
}

// writeSPIFFEFS writes a SPIFFE Filesystem Delivery credential folder in
// revision rev: one "<trust-domain><suffix>" per trust domain that has at
// least one certificate, then the credential bundles, then (indexed
// revisions) hints.json; trust bundle files of trust domains no longer in
// the set or left without certificates, and credential bundles of SVIDs no
// longer in the set, are removed. JWT files, when there are any, go to Dir.
// Everything is one commit.
func (w *Writer) writeSPIFFEFS(set *hostapi.CredentialSet, rev SPIFFEFSRevision) ([]string, error) {
	c := &w.cfg
	if len(set.X509SVIDs) > 0 && set.X509Bundles == nil {
		return nil, fmt.Errorf("delivering X509-SVIDs: the set has no X.509 bundles")
	}
	var entries []entry
	if rev.Indexed {
		folder, err := w.planSPIFFEFSFolder(set, rev, c.Dir, set.X509SVIDs, CredentialBundleFileName)
		if err != nil {
			return nil, err
		}
		entries = folder
		hints, err := encodeHints(set.X509SVIDs)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{dir: c.Dir, name: HintsFileName, data: hints, mode: fs.FileMode(c.CertFileMode)})
	} else {
		for i, svid := range set.X509SVIDs {
			folder, err := w.planSPIFFEFSFolder(set, rev, SPIFFEFSFolder(c.Dir, i), []*x509svid.SVID{svid}, func(int) string { return rev.CredentialBundle })
			if err != nil {
				return nil, err
			}
			entries = append(entries, folder...)
		}
	}
	jwt, err := w.planJWT(set)
	if err != nil {
		return nil, err
	}
	for i := range jwt {
		jwt[i].dir = c.Dir
	}
	entries = append(entries, jwt...)
	if err := checkUnique(entries); err != nil {
		return nil, err
	}
	return w.commit(entries)
}

// planSPIFFEFSFolder plans one credential folder holding svids, the i-th
// named credName(i).
func (w *Writer) planSPIFFEFSFolder(set *hostapi.CredentialSet, rev SPIFFEFSRevision, folder string, svids []*x509svid.SVID, credName func(int) string) ([]entry, error) {
	c := &w.cfg
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return nil, fmt.Errorf("creating credential folder %q: %w", folder, err)
	}
	var entries []entry
	// Trust bundles first, so that a new CA is trusted before a leaf it
	// signed is delivered. A trust domain without certificates gets no
	// file: the draft requires "one or more PEM CERTIFICATE blocks".
	keep := map[string]bool{}
	if set.X509Bundles != nil {
		now := time.Now()
		for _, b := range set.X509Bundles.Bundles() {
			data := encodeCerts(b.X509Authorities(), c.OmitExpired, now)
			if len(data) == 0 {
				continue
			}
			name := b.TrustDomain().Name() + rev.TrustBundleSuffix
			keep[name] = true
			entries = append(entries, entry{dir: folder, name: name, data: data, mode: fs.FileMode(c.CertFileMode)})
		}
	}
	for i, svid := range svids {
		cred, err := credentialBundle(svid, set.X509Bundles)
		if err != nil {
			return nil, err
		}
		keep[credName(i)] = true
		entries = append(entries, entry{dir: folder, name: credName(i), data: cred, mode: fs.FileMode(c.KeyFileMode)})
	}

	// De-federation: a trust bundle file whose trust domain left the set
	// is removed, so that the application stops trusting it; so is the
	// credential bundle of an SVID the set no longer holds.
	des, err := os.ReadDir(folder)
	if err != nil {
		return nil, fmt.Errorf("listing credential folder %q: %w", folder, err)
	}
	for _, de := range des {
		n := de.Name()
		stale := strings.HasSuffix(n, rev.TrustBundleSuffix) || (rev.Indexed && isIndexedCredentialBundle(n))
		if stale && !strings.HasPrefix(n, ".") && !keep[n] && de.Type().IsRegular() {
			entries = append(entries, entry{dir: folder, name: n, remove: true})
		}
	}
	return entries, nil
}

// credentialBundle returns the standard's credential bundle: the PKCS#8
// PRIVATE KEY block, then the chain leaf first without its trust anchor.
// Blocks carry no headers and nothing separates them.
func credentialBundle(svid *x509svid.SVID, bundles *x509bundle.Set) ([]byte, error) {
	key, err := marshalKey(svid)
	if err != nil {
		return nil, err
	}
	if len(svid.Certificates) == 0 {
		return nil, fmt.Errorf("encoding X509-SVID %q: it has no certificates", svid.ID)
	}
	chain := svid.Certificates
	var anchors []*x509.Certificate
	if b, ok := bundles.Get(svid.ID.TrustDomain()); ok {
		anchors = b.X509Authorities()
	}
	// "The certificate chain MUST NOT contain the trust anchor": drop a
	// trailing certificate that is in the bundle or is self-signed.
	for len(chain) > 1 && isAnchor(chain[len(chain)-1], anchors) {
		chain = chain[:len(chain)-1]
	}
	var buf bytes.Buffer
	buf.Write(key)
	buf.Write(encodeCerts(chain, false, time.Time{}))
	return buf.Bytes(), nil
}

func isAnchor(c *x509.Certificate, anchors []*x509.Certificate) bool {
	for _, a := range anchors {
		if a.Equal(c) {
			return true
		}
	}
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}
