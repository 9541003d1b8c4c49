package filewatch

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
)

// Config configures the files issuer (issuer.files). The file name
// defaults are those of cert-manager and of a kubernetes.io/tls Secret.
type Config struct {
	// Dir is the directory that holds the files; it is watched, not the
	// files, so atomic renames and Kubernetes' "..data" symlink swaps are
	// seen. A relative path is taken from the agent's working directory.
	// Required.
	Dir string `hcl:"dir,optional" json:"dir"`
	// CertFile is the name, inside Dir, of the PEM certificate chain,
	// leaf first. Default: "tls.crt".
	CertFile string `hcl:"cert_file,optional" json:"cert_file"`
	// KeyFile is the name, inside Dir, of the leaf's PEM private key
	// (PKCS#8, PKCS#1 or SEC 1). Default: "tls.key".
	KeyFile string `hcl:"key_file,optional" json:"key_file"`
	// BundleFile is the name, inside Dir, of the PEM CA certificates that
	// the leaf's trust domain trusts. Default: "ca.crt".
	BundleFile string `hcl:"bundle_file,optional" json:"bundle_file"`
	// Debounce is how long the directory must be quiet before it is
	// reloaded; a burst of changes is read once. Default: "100ms".
	Debounce string `hcl:"debounce,optional" json:"debounce"`
}

// DefaultConfig returns a Config with its defaults set. Dir stays empty: it
// is required.
func DefaultConfig() *Config {
	return &Config{CertFile: "tls.crt", KeyFile: "tls.key", BundleFile: "ca.crt", Debounce: "100ms"}
}

// maxDebounce bounds debounce: credentials waiting longer than this for a
// quiet directory would be stale for no reason.
const maxDebounce = time.Minute

// Validate checks every field. It returns hostapi.FieldErrors.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

// parsed is a validated Config.
type parsed struct {
	dir                           string // absolute
	certFile, keyFile, bundleFile string
	debounce                      time.Duration
}

func (c *Config) parse() (parsed, error) {
	var (
		p    parsed
		errs hostapi.FieldErrors
	)
	if strings.TrimSpace(c.Dir) == "" {
		errs.Add("dir", "dir is required; set it to the directory that holds the certificate, key and CA files, for example dir = \"/etc/tls\" (a Kubernetes Secret mount or cert-manager's output)")
	} else if abs, err := filepath.Abs(c.Dir); err != nil {
		errs.Add("dir", fmt.Sprintf("cannot make %q absolute (%v); use an absolute path", c.Dir, err))
	} else {
		p.dir = abs
	}
	names := map[string]string{}
	checkName := func(field, def, v string, dst *string) {
		switch {
		case v == "":
			errs.Add(field, fmt.Sprintf("%s is empty; name the file inside dir, for example %s = %q, or leave %s out for that default", field, field, def, field))
			return
		case v != filepath.Base(v) || v == "." || v == "..":
			errs.Add(field, fmt.Sprintf("%q is not a plain file name; name a file directly inside dir (for example %q) and set dir to the directory that holds it", v, def))
			return
		case strings.HasPrefix(v, ".."):
			errs.Add(field, fmt.Sprintf("%q starts with \"..\", which Kubernetes reserves for its own entries; name the file itself, for example %q", v, def))
			return
		}
		if other, dup := names[v]; dup {
			errs.Add(field, fmt.Sprintf("%q is also %s; the certificate, key and CA bundle must be three different files", v, other))
			return
		}
		names[v] = field
		*dst = v
	}
	checkName("cert_file", "tls.crt", c.CertFile, &p.certFile)
	checkName("key_file", "tls.key", c.KeyFile, &p.keyFile)
	checkName("bundle_file", "ca.crt", c.BundleFile, &p.bundleFile)

	d, err := time.ParseDuration(c.Debounce)
	switch {
	case err != nil:
		errs.Add("debounce", fmt.Sprintf("%q is not a duration; write it like \"100ms\" or \"1s\"", c.Debounce))
	case d <= 0:
		errs.Add("debounce", fmt.Sprintf("%q is not positive; write a positive duration like \"100ms\", so that a burst of file changes is read once", c.Debounce))
	case d > maxDebounce:
		errs.Add("debounce", fmt.Sprintf("%q is longer than %s, which would hold back new credentials for no gain; use a short duration like \"100ms\"", c.Debounce, maxDebounce))
	default:
		p.debounce = d
	}
	return p, errs.Err()
}
