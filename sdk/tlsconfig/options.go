package tlsconfig

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// EnvCredentialFolder is the environment variable earlier revisions of the
// SPIFFE Filesystem Delivery draft used to point an application at its
// credential folder; the newest revision defines none (the path is agreed
// out-of-band). [NewSource] reads it when no [WithDir] is given.
const EnvCredentialFolder = "SPIFFE_CREDENTIAL_FOLDER"

// DefaultDebounce is how long the Source waits after the last change in the
// folder before it reloads.
const DefaultDebounce = 100 * time.Millisecond

// Layout is a way of laying credentials out in a folder.
type Layout int

const (
	// LayoutAuto picks LayoutSPIFFEFS when the folder holds the credential
	// bundle of a SPIFFE Filesystem Delivery revision (see [Revision]) and
	// LayoutSPIFFEHelper otherwise. It decides again at every reload.
	LayoutAuto Layout = iota
	// LayoutSPIFFEHelper is spiffe-helper's layout (svidagent's "flat"
	// and "data" layouts): the chain leaf first in one file, the PKCS#8
	// key in another, the trust domain's bundle in a third, and optionally
	// one "<trust-domain>.bundle.pem" per trust domain.
	LayoutSPIFFEHelper
	// LayoutSPIFFEFS is the SPIFFE Filesystem Delivery draft: a
	// credential bundle (key, then chain) and one trust bundle per trust
	// domain, named as the revision picked by [WithRevision] (default: the
	// newest whose credential bundle is present) names them.
	LayoutSPIFFEFS
)

// Revision is a published revision of the SPIFFE Filesystem Delivery draft
// (spiffe/spiffe PR #376). Its value is the svidagent writer's layout that
// writes it.
type Revision string

const (
	// RevisionAuto reads the newest revision whose credential bundle is in
	// the folder, deciding again at every reload.
	RevisionAuto Revision = ""
	// RevisionSPIFFEFS is the newest draft (".x509.pem" postfix, settled
	// in its August 2026 review; what spiffe/spiffefs writes):
	// "credential-bundle.private-key.x509.pem" and
	// "<trust-domain>.spiffe-trust-bundle.x509.pem".
	RevisionSPIFFEFS Revision = "spiffe-fs"
	// RevisionSPIFFEFS20260813 is the draft as reviewed on 2026-08-13:
	// "credential-bundle.private-key.pem" and
	// "<trust-domain>.spiffe-trust-bundle.pem".
	RevisionSPIFFEFS20260813 Revision = "spiffe-fs-2026-08-13"
	// RevisionSPIFFEFS202602 is the February 2026 draft:
	// "credential-bundle.pem" and "<trust-domain>.spiffe-trust-bundle.pem".
	RevisionSPIFFEFS202602 Revision = "spiffe-fs-2026-02"
)

// revisionNames are one revision's file names.
type revisionNames struct {
	rev               Revision
	credentialBundle  string
	trustBundleSuffix string
}

// revisions lists every revision, newest first: auto-detection takes the
// first whose credential bundle exists.
var revisions = []revisionNames{
	{RevisionSPIFFEFS, CredentialBundleName, TrustBundleSuffix},
	{RevisionSPIFFEFS20260813, "credential-bundle.private-key.pem", ".spiffe-trust-bundle.pem"},
	{RevisionSPIFFEFS202602, "credential-bundle.pem", ".spiffe-trust-bundle.pem"},
}

// String returns the layout's name.
func (l Layout) String() string {
	switch l {
	case LayoutAuto:
		return "auto"
	case LayoutSPIFFEHelper:
		return "spiffe-helper"
	case LayoutSPIFFEFS:
		return "spiffe-fs"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// File names the Source reads.
const (
	// CredentialBundleName is the newest draft's credential bundle.
	CredentialBundleName = "credential-bundle.private-key.x509.pem"
	// TrustBundleSuffix ends a trust bundle's name in the newest draft.
	TrustBundleSuffix = ".spiffe-trust-bundle.x509.pem"
	// PerTrustDomainSuffix ends a spiffe-helper layout per-trust-domain
	// bundle's name ("<trust-domain>.bundle.pem", svidagent's
	// bundle_per_trust_domain).
	PerTrustDomainSuffix = ".bundle.pem"
	// DataDirName is the symlink of the Kubernetes atomic-writer ("data")
	// layout; when present, every file is read through it.
	DataDirName = "..data"

	// DefaultSVIDFileName, DefaultKeyFileName and DefaultBundleFileName
	// are spiffe-helper's default names.
	DefaultSVIDFileName   = "svid.pem"
	DefaultKeyFileName    = "svid_key.pem"
	DefaultBundleFileName = "svid_bundle.pem"
)

// Option configures a [Source].
type Option func(*options)

type options struct {
	dir         string
	layout      Layout
	revision    Revision
	svidName    string
	keyName     string
	bundleName  string
	debounce    time.Duration
	debounceSet bool
	logger      *slog.Logger
}

// WithDir sets the credential folder. Default: the value of
// $SPIFFE_CREDENTIAL_FOLDER.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithLayout sets the folder's layout. Default: LayoutAuto.
func WithLayout(l Layout) Option { return func(o *options) { o.layout = l } }

// WithRevision pins the SPIFFE Filesystem Delivery draft revision whose
// file names are read. Default: RevisionAuto.
func WithRevision(r Revision) Option { return func(o *options) { o.revision = r } }

// WithFileNames sets the spiffe-helper layout's file names (its
// svid_file_name, svid_key_file_name and svid_bundle_file_name). Default:
// "svid.pem", "svid_key.pem", "svid_bundle.pem".
func WithFileNames(svid, key, bundle string) Option {
	return func(o *options) { o.svidName, o.keyName, o.bundleName = svid, key, bundle }
}

// WithDebounce sets how long the Source waits after the last change in the
// folder before it reloads; changes that keep coming delay a reload by at
// most ten times d. Zero reloads at once. Default: 100ms.
func WithDebounce(d time.Duration) Option {
	return func(o *options) { o.debounce, o.debounceSet = d, true }
}

// WithLogger sets a logger for reload failures and watch problems. The
// Source never logs otherwise. Default: none.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) (*options, error) {
	o := &options{
		layout:     LayoutAuto,
		svidName:   DefaultSVIDFileName,
		keyName:    DefaultKeyFileName,
		bundleName: DefaultBundleFileName,
		debounce:   DefaultDebounce,
	}
	for _, opt := range opts {
		opt(o)
	}
	if o.dir == "" {
		o.dir = os.Getenv(EnvCredentialFolder)
	}
	if strings.TrimSpace(o.dir) == "" {
		return nil, fmt.Errorf("locating the credential folder: none given; pass WithDir or set %s", EnvCredentialFolder)
	}
	switch o.layout {
	case LayoutAuto, LayoutSPIFFEHelper, LayoutSPIFFEFS:
	default:
		return nil, fmt.Errorf("checking options: unknown layout %d; use LayoutAuto, LayoutSPIFFEHelper or LayoutSPIFFEFS", int(o.layout))
	}
	if o.revision != RevisionAuto && !slices.ContainsFunc(revisions, func(r revisionNames) bool { return r.rev == o.revision }) {
		return nil, fmt.Errorf("checking options: unknown revision %q; use RevisionAuto, RevisionSPIFFEFS, RevisionSPIFFEFS20260813 or RevisionSPIFFEFS202602", string(o.revision))
	}
	for _, n := range []struct{ what, name string }{
		{"SVID file name", o.svidName}, {"key file name", o.keyName}, {"bundle file name", o.bundleName},
	} {
		if n.name == "" || n.name == "." || n.name == ".." || strings.ContainsAny(n.name, `/\`) {
			return nil, fmt.Errorf("checking options: %s %q is not a plain file name; pass a name such as %q to WithFileNames", n.what, n.name, DefaultSVIDFileName)
		}
	}
	if o.debounce < 0 {
		return nil, fmt.Errorf("checking options: debounce %s is negative; pass zero or a positive duration to WithDebounce", o.debounce)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
