package tlsconfig

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// snapshot is one consistent, verified load of the folder.
type snapshot struct {
	svid    *x509svid.SVID
	bundles map[spiffeid.TrustDomain]*x509bundle.Bundle
	// digest identifies the content, so that a reload that changed
	// nothing does not signal Updated.
	digest [sha256.Size]byte
}

// maxResolveAttempts bounds how often a load restarts because the ..data
// symlink moved under it.
const maxResolveAttempts = 5

// load reads the folder once. In the data layout it resolves ..data once,
// reads every file from that version directory, and starts again when the
// version vanished or ..data moved meanwhile, so the files always come from
// one set.
func load(o *options) (*snapshot, error) {
	var lastErr error
	for range maxResolveAttempts {
		base, version, err := resolve(o.dir)
		if err != nil {
			return nil, err
		}
		snap, err := loadFrom(o, base)
		if version == "" {
			return snap, err
		}
		after, _, rerr := resolve(o.dir)
		if rerr == nil && after == base {
			// ..data did not move: the files came from one set.
			return snap, err
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("it kept changing")
	}
	return nil, fmt.Errorf("reading %q through %s: %w", o.dir, DataDirName, lastErr)
}

// resolve returns the directory to read files from: the target of dir/..data
// when it is a symlink, dir otherwise. version is the symlink's target, or
// "" when there is none.
func resolve(dir string) (base, version string, err error) {
	link := filepath.Join(dir, DataDirName)
	target, err := os.Readlink(link)
	switch {
	case err == nil:
		if filepath.IsAbs(target) {
			return target, target, nil
		}
		return filepath.Join(dir, target), target, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EINVAL):
		// No ..data, or not a symlink: the files are in dir.
		if _, serr := os.Stat(dir); serr != nil {
			return "", "", fmt.Errorf("opening the credential folder: %w", serr)
		}
		return dir, "", nil
	default:
		return "", "", fmt.Errorf("reading %q: %w", link, err)
	}
}

func loadFrom(o *options, base string) (*snapshot, error) {
	layout := o.layout
	rev, found := detectRevision(o, base)
	if layout == LayoutAuto {
		layout = LayoutSPIFFEHelper
		if found {
			layout = LayoutSPIFFEFS
		}
	}
	var (
		svid    *x509svid.SVID
		bundles map[spiffeid.TrustDomain]*x509bundle.Bundle
		err     error
	)
	if layout == LayoutSPIFFEFS {
		svid, bundles, err = loadSPIFFEFS(base, rev)
	} else {
		svid, bundles, err = loadHelper(o, base)
	}
	if err != nil {
		return nil, err
	}
	td := svid.ID.TrustDomain()
	if _, ok := bundles[td]; !ok {
		return nil, fmt.Errorf("finding the bundle of the SVID's trust domain %q in %q: there is none; check that the agent writes it", td, base)
	}
	// The SVID must verify against its own trust domain's bundle: this
	// catches a torn read (a leaf from a new CA with the old bundle) and
	// an expired SVID, both of which are kept out.
	set := x509bundle.NewSet()
	set.Add(bundles[td])
	if _, _, err := x509svid.Verify(svid.Certificates, set); err != nil {
		return nil, fmt.Errorf("verifying the SVID %q against its trust domain's bundle: %w", svid.ID, err)
	}
	return &snapshot{svid: svid, bundles: bundles, digest: digest(svid, bundles)}, nil
}

// detectRevision returns the draft revision to read base with: the pinned
// one, else the newest whose credential bundle is in base. found reports
// whether that credential bundle exists.
func detectRevision(o *options, base string) (rev revisionNames, found bool) {
	for _, r := range revisions {
		if o.revision != RevisionAuto && r.rev != o.revision {
			continue
		}
		if _, err := os.Lstat(filepath.Join(base, r.credentialBundle)); err == nil {
			return r, true
		}
		if o.revision != RevisionAuto {
			return r, false
		}
	}
	return revisions[0], false
}

// loadSPIFFEFS reads a SPIFFE Filesystem Delivery credential folder in
// revision rev: the credential bundle in one open/read/close, then every
// trust bundle file, each held to the draft's rules.
func loadSPIFFEFS(base string, rev revisionNames) (*x509svid.SVID, map[spiffeid.TrustDomain]*x509bundle.Bundle, error) {
	path := filepath.Join(base, rev.credentialBundle)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the credential bundle: %w", err)
	}
	svid, err := parseCredentialBundle(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the credential bundle %q: %w", path, err)
	}
	bundles, err := loadBundles(base, rev.trustBundleSuffix, parseTrustBundle)
	if err != nil {
		return nil, nil, err
	}
	return svid, bundles, nil
}

// loadHelper reads spiffe-helper's layout: the SVID file, the key file, the
// bundle file and every "<trust-domain>.bundle.pem".
func loadHelper(o *options, base string) (*x509svid.SVID, map[spiffeid.TrustDomain]*x509bundle.Bundle, error) {
	certPEM, err := os.ReadFile(filepath.Join(base, o.svidName))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the SVID: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(base, o.keyName))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the key: %w", err)
	}
	svid, err := x509svid.Parse(certPEM, keyPEM)
	if err != nil {
		// A new cert with the old key (the flat layout renames the cert
		// first) lands here; the key's rename brings another reload.
		return nil, nil, fmt.Errorf("parsing the SVID and key in %q: %w", base, err)
	}
	bundles, err := loadBundles(base, PerTrustDomainSuffix, x509bundle.Parse)
	if err != nil {
		return nil, nil, err
	}
	td := svid.ID.TrustDomain()
	if _, ok := bundles[td]; !ok {
		path := filepath.Join(base, o.bundleName)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the bundle: %w", err)
		}
		own, err := x509bundle.Parse(td, data)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing the bundle %q: %w", path, err)
		}
		// With include_federated_domains the bundle file also holds
		// other trust domains' authorities. Those that have their own
		// file are taken out, so that no trust domain is trusted to
		// issue another's identities.
		for _, b := range bundles {
			for _, c := range b.X509Authorities() {
				own.RemoveX509Authority(c)
			}
		}
		bundles[td] = own
	}
	return svid, bundles, nil
}

// loadBundles reads every "<trust-domain><suffix>" file in base, each as
// that trust domain's bundle only. Hidden files (a writer's temporaries)
// and names that are not trust domains are ignored.
func loadBundles(base, suffix string, parse func(spiffeid.TrustDomain, []byte) (*x509bundle.Bundle, error)) (map[spiffeid.TrustDomain]*x509bundle.Bundle, error) {
	des, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("listing the credential folder: %w", err)
	}
	out := map[spiffeid.TrustDomain]*x509bundle.Bundle{}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, suffix) || de.IsDir() {
			continue
		}
		td, err := spiffeid.TrustDomainFromString(strings.TrimSuffix(name, suffix))
		if err != nil {
			continue
		}
		path := filepath.Join(base, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading the bundle of %q: %w", td, err)
		}
		b, err := parse(td, data)
		if err != nil {
			return nil, fmt.Errorf("parsing the bundle %q: %w", path, err)
		}
		out[td] = b
	}
	return out, nil
}

func digest(svid *x509svid.SVID, bundles map[spiffeid.TrustDomain]*x509bundle.Bundle) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range svid.Certificates {
		h.Write(c.Raw)
	}
	h.Write([]byte{0})
	tds := make([]spiffeid.TrustDomain, 0, len(bundles))
	for td := range bundles {
		tds = append(tds, td)
	}
	sort.Slice(tds, func(i, j int) bool { return tds[i].Name() < tds[j].Name() })
	for _, td := range tds {
		h.Write([]byte(td.Name()))
		h.Write([]byte{0})
		certs := append([]*x509.Certificate(nil), bundles[td].X509Authorities()...)
		for _, c := range certs {
			h.Write(c.Raw)
		}
		h.Write([]byte{0})
	}
	var d [sha256.Size]byte
	copy(d[:], h.Sum(nil))
	return d
}
