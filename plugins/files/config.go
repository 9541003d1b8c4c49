package files

import (
	"fmt"
	"strings"

	"github.com/svidagent/svidagent/hostapi"
)

// Layouts.
const (
	// LayoutFlat writes each file directly in Dir, as spiffe-helper does.
	// Each file is replaced atomically, but a reader that opens the cert and
	// then the key can see a new cert with the old key for a moment.
	LayoutFlat = "flat"
	// LayoutData keeps the whole set in a versioned directory behind a
	// "..data" symlink that is swapped atomically (Kubernetes' atomic
	// writer), so a reader never sees a new cert with an old key.
	LayoutData = "data"
	// LayoutSPIFFEFS is the newest revision of the SPIFFE Filesystem
	// Delivery draft (spiffe/spiffe PR #376, ".x509.pem" names settled in
	// its August 2026 review), laid out as spiffe/spiffefs does.
	LayoutSPIFFEFS = "spiffe-fs"
	// LayoutSPIFFEFS202608 pins the draft text reviewed on 2026-08-13,
	// before the ".x509.pem" postfix: "credential-bundle.private-key.pem"
	// and "<trust-domain>.spiffe-trust-bundle.pem". It is what the
	// "spiffe-fs" layout wrote before it followed the newest revision.
	LayoutSPIFFEFS202608 = "spiffe-fs-2026-08-13"
	// LayoutSPIFFEFS202602 pins the February 2026 draft:
	// "credential-bundle.pem" and "<trust-domain>.spiffe-trust-bundle.pem".
	LayoutSPIFFEFS202602 = "spiffe-fs-2026-02"
)

// Config configures the files writer (writer.files). Field names and
// defaults match spiffe-helper's keys.
type Config struct {
	// Dir is the directory the files are written to; it is created (0755)
	// if missing. Required. spiffe-helper: cert_dir.
	Dir string `hcl:"dir,optional" json:"dir"`
	// Layout is "flat", "data", "spiffe-fs" (the newest SPIFFE Filesystem
	// Delivery draft) or a pinned earlier draft revision
	// ("spiffe-fs-2026-08-13", "spiffe-fs-2026-02"). Default: "flat".
	Layout string `hcl:"layout,optional" json:"layout"`

	// SVIDFileName holds the X509-SVID chain, leaf first. Default: "svid.pem".
	SVIDFileName string `hcl:"svid_file_name,optional" json:"svid_file_name"`
	// SVIDKeyFileName holds the PKCS#8 private key. Default: "svid_key.pem".
	SVIDKeyFileName string `hcl:"svid_key_file_name,optional" json:"svid_key_file_name"`
	// SVIDBundleFileName holds the trust bundle. Default: "svid_bundle.pem".
	SVIDBundleFileName string `hcl:"svid_bundle_file_name,optional" json:"svid_bundle_file_name"`
	// CombinedFileName, when set, also writes the key followed by the
	// chain to one file, mode KeyFileMode. Default: "" (none).
	CombinedFileName string `hcl:"combined_file_name,optional" json:"combined_file_name"`
	// JWTBundleFileName, when set, holds the JWT bundles as JSON
	// {"<trust domain>": "<base64 JWKS>"}. Default: "" (none).
	JWTBundleFileName string `hcl:"jwt_bundle_file_name,optional" json:"jwt_bundle_file_name"`
	// BundlePerTrustDomain also writes one "<trust domain>.bundle.pem"
	// bundle per trust domain in the set. Default: false.
	BundlePerTrustDomain bool `hcl:"bundle_per_trust_domain,optional" json:"bundle_per_trust_domain"`

	// AddIntermediatesToBundle moves the intermediates from the SVID file
	// to the bundle file. Default: false.
	AddIntermediatesToBundle bool `hcl:"add_intermediates_to_bundle,optional" json:"add_intermediates_to_bundle"`
	// IncludeFederatedDomains appends federated trust domains' bundles to
	// the bundle file. Default: false.
	IncludeFederatedDomains bool `hcl:"include_federated_domains,optional" json:"include_federated_domains"`
	// OmitExpired leaves expired certificates out of the bundle. Default: false.
	OmitExpired bool `hcl:"omit_expired,optional" json:"omit_expired"`

	// CertFileMode is the mode of the SVID and bundle files. Default: 0644.
	CertFileMode uint32 `hcl:"cert_file_mode,optional" json:"cert_file_mode"`
	// KeyFileMode is the mode of the key (and combined) file. Default: 0600.
	KeyFileMode uint32 `hcl:"key_file_mode,optional" json:"key_file_mode"`
	// JWTBundleFileMode is the JWT bundle file's mode. Default: 0600.
	JWTBundleFileMode uint32 `hcl:"jwt_bundle_file_mode,optional" json:"jwt_bundle_file_mode"`
	// JWTSVIDFileMode is the mode of the JWT-SVID files. Default: 0600.
	JWTSVIDFileMode uint32 `hcl:"jwt_svid_file_mode,optional" json:"jwt_svid_file_mode"`
}

// DefaultConfig returns a Config with its defaults set.
func DefaultConfig() *Config {
	return &Config{
		Layout:             LayoutFlat,
		SVIDFileName:       "svid.pem",
		SVIDKeyFileName:    "svid_key.pem",
		SVIDBundleFileName: "svid_bundle.pem",
		CertFileMode:       0o644,
		KeyFileMode:        0o600,
		JWTBundleFileMode:  0o600,
		JWTSVIDFileMode:    0o600,
	}
}

// NeedsJWTBundles reports whether the writer delivers JWT bundles, so that
// the issuer is asked for them.
func (c *Config) NeedsJWTBundles() bool { return c.JWTBundleFileName != "" }

// maxMode is the largest mode Validate accepts: permission bits only, no
// setuid, setgid or sticky bit.
const maxMode = 0o777

// Validate checks c and returns the problems as hostapi.FieldErrors, each
// naming the HCL attribute and saying how to fix it.
func (c *Config) Validate() error {
	var errs hostapi.FieldErrors
	if strings.TrimSpace(c.Dir) == "" {
		errs.Add("dir", `dir is required; set it to the directory the files go to, for example dir = "/run/svid"`)
	}
	switch c.Layout {
	case LayoutFlat, LayoutData:
	default:
		if _, ok := spiffeFSRevision(c.Layout); !ok {
			errs.Add("layout", fmt.Sprintf("unknown layout %q; use %q, %q, %q (newest SPIFFE Filesystem Delivery draft), %q or %q (pinned earlier drafts)",
				c.Layout, LayoutFlat, LayoutData, LayoutSPIFFEFS, LayoutSPIFFEFS202608, LayoutSPIFFEFS202602))
		}
	}

	for _, m := range []struct {
		field string
		mode  uint32
	}{
		{"cert_file_mode", c.CertFileMode},
		{"key_file_mode", c.KeyFileMode},
		{"jwt_bundle_file_mode", c.JWTBundleFileMode},
		{"jwt_svid_file_mode", c.JWTSVIDFileMode},
	} {
		if m.mode > maxMode {
			errs.Add(m.field, fmt.Sprintf("mode 0%o is over 0777; use an octal permission such as 0644", m.mode))
		}
	}

	seen := map[string]string{}
	for _, n := range []struct {
		field    string
		name     string
		optional bool
	}{
		{"svid_file_name", c.SVIDFileName, false},
		{"svid_key_file_name", c.SVIDKeyFileName, false},
		{"svid_bundle_file_name", c.SVIDBundleFileName, false},
		{"combined_file_name", c.CombinedFileName, true},
		{"jwt_bundle_file_name", c.JWTBundleFileName, true},
	} {
		if n.name == "" {
			if !n.optional {
				errs.Add(n.field, fmt.Sprintf("%s is empty; set a plain file name such as %q or leave it out for the default", n.field, DefaultConfig().defaultName(n.field)))
			}
			continue
		}
		if msg := checkName(n.name); msg != "" {
			errs.Add(n.field, msg)
			continue
		}
		if other, dup := seen[n.name]; dup {
			errs.Add(n.field, fmt.Sprintf("file name %q is also used by %s; give each file its own name", n.name, other))
			continue
		}
		seen[n.name] = n.field
	}
	return errs.Err()
}

func (c *Config) defaultName(field string) string {
	switch field {
	case "svid_file_name":
		return c.SVIDFileName
	case "svid_key_file_name":
		return c.SVIDKeyFileName
	default:
		return c.SVIDBundleFileName
	}
}

// checkName returns what is wrong with a file name, or "" when it is a
// plain name that can live directly in Dir.
func checkName(name string) string {
	switch {
	case name == "":
		return "file name is empty; use a plain file name such as \"svid.pem\""
	case strings.ContainsAny(name, `/\`):
		return fmt.Sprintf("file name %q contains a path separator; use a plain file name and put the directory in dir", name)
	case name == "." || name == "..":
		return fmt.Sprintf("file name %q is not a file; use a plain file name such as \"svid.pem\"", name)
	case strings.HasPrefix(name, ".."):
		return fmt.Sprintf("file name %q starts with \"..\", which is reserved for the data layout's internal entries; rename it", name)
	case strings.ContainsRune(name, 0):
		return fmt.Sprintf("file name %q contains a NUL byte; use a plain file name", name)
	}
	return ""
}
