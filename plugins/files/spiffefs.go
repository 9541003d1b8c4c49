package files

import (
	"bytes"
	"crypto/x509"
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

// SPIFFEFSFolder returns the credential folder of the i-th X509-SVID in the
// spiffe-fs layout: dir itself for the first, dir/svid_<i> for the others
// (the standard allows a credential folder to hold other directories).
func SPIFFEFSFolder(dir string, i int) string {
	if i == 0 {
		return dir
	}
	return filepath.Join(dir, "svid_"+strconv.Itoa(i))
}

// writeSPIFFEFS writes the SPIFFE Filesystem Delivery layout: per X509-SVID
// a credential folder holding one "<trust-domain>.spiffe-trust-bundle.pem"
// per trust domain in the set, then "credential-bundle.private-key.pem";
// trust bundle files of trust domains no longer in the set are removed.
// JWT files, when there are any, go to Dir. Everything is one commit.
func (w *Writer) writeSPIFFEFS(set *hostapi.CredentialSet) ([]string, error) {
	c := &w.cfg
	now := time.Now()
	var entries []entry
	if len(set.X509SVIDs) > 0 && set.X509Bundles == nil {
		return nil, fmt.Errorf("delivering X509-SVIDs: the set has no X.509 bundles")
	}
	for i, svid := range set.X509SVIDs {
		folder := SPIFFEFSFolder(c.Dir, i)
		if err := os.MkdirAll(folder, 0o755); err != nil {
			return nil, fmt.Errorf("creating credential folder %q: %w", folder, err)
		}
		// Trust bundles first, so that a new CA is trusted before a leaf
		// it signed is delivered.
		keep := map[string]bool{}
		for _, b := range set.X509Bundles.Bundles() {
			name := b.TrustDomain().Name() + TrustBundleSuffix
			keep[name] = true
			entries = append(entries, entry{dir: folder, name: name, data: encodeCerts(b.X509Authorities(), c.OmitExpired, now), mode: fs.FileMode(c.CertFileMode)})
		}
		cred, err := credentialBundle(svid, set.X509Bundles)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{dir: folder, name: CredentialBundleName, data: cred, mode: fs.FileMode(c.KeyFileMode)})

		// De-federation: a trust bundle file whose trust domain left the
		// set is removed, so that the application stops trusting it.
		des, err := os.ReadDir(folder)
		if err != nil {
			return nil, fmt.Errorf("listing credential folder %q: %w", folder, err)
		}
		for _, de := range des {
			n := de.Name()
			if strings.HasSuffix(n, TrustBundleSuffix) && !strings.HasPrefix(n, ".") && !keep[n] && de.Type().IsRegular() {
				entries = append(entries, entry{dir: folder, name: n, remove: true})
			}
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
