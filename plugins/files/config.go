package files

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
	// LayoutSPIFFEFS is the SPIFFE Filesystem Delivery standard.
	LayoutSPIFFEFS = "spiffe-fs"
)

// Config configures the files writer (writer.files). Field names and
// defaults match spiffe-helper's keys.
type Config struct {
	// Dir is the directory the files are written to; it is created (0755)
	// if missing. Required. spiffe-helper: cert_dir.
	Dir string `hcl:"dir,optional" json:"dir"`
	// Layout is "flat", "data" or "spiffe-fs". Default: "flat".
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
	// BundlePerTrustDomain also writes one "<trust domain>.pem" bundle per
	// trust domain. Default: false.
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
