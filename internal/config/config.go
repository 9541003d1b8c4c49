package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/svidagent/svidagent/hostapi"
)

// Format names the schema a file was written in.
type Format string

const (
	FormatNative       Format = "native"        // agent.hcl
	FormatSPIFFEHelper Format = "spiffe-helper" // helper.conf
)

// Config is the agent's configuration.
type Config struct {
	// Path is the file the configuration was loaded from, if any.
	Path string `json:"-"`
	// Format is the schema Path was written in.
	Format Format `json:"format"`

	// DaemonMode keeps credentials fresh until the agent is stopped; when
	// false the agent fetches once, writes, and exits. Default: true.
	DaemonMode bool `json:"daemon_mode"`
	// FetchTimeout bounds a one-shot fetch, retried with backoff meanwhile.
	// Default: 30s.
	FetchTimeout time.Duration `json:"fetch_timeout"`

	// Issuers are the credential sources, by name.
	Issuers []Plugin `json:"issuers"`
	// SVIDs are the identities to keep fresh and where to deliver them.
	SVIDs []SVID `json:"svids"`
	// Health is the health listener.
	Health Health `json:"health"`
	// Plugins are the plugin "name" { ... } blocks, in file order. The
	// issuers, writers and notifiers that reference one share its
	// *External.
	Plugins []*External `json:"plugins,omitempty"`
	// StateDir is where the agent keeps its state (the WASM compile cache,
	// pinned copies of command plugins), resolved against the config
	// file's directory; empty leaves it to [DefaultStateDir]. Use
	// [Config.StateDirectory].
	StateDir string `json:"state_dir,omitempty"`

	// LogLevel is helper.conf's log_level ("debug", "info", ...), lower
	// case; empty leaves the agent's own setting alone. agent.hcl has no
	// such key: the CLI's flag sets it.
	LogLevel string `json:"log_level,omitempty"`
	// Warnings are the loader's non-fatal diagnostics (a file mode read as
	// decimal, say), for the CLI to print.
	Warnings hcl.Diagnostics `json:"-"`
}

// Plugin is one configured plugin instance.
type Plugin struct {
	// Name is the instance's name: an issuer's block label, or for writers
	// and notifiers their type, suffixed "#N" when a type repeats in a block.
	Name string `json:"name"`
	// Type is the module's name within its kind: "files" for writer.files.
	Type string `json:"type"`
	// Config is the module's decoded, validated config struct; nil for an
	// external plugin.
	Config any `json:"config"`
	// External is the plugin block the instance refers to, when Type names
	// one rather than a built-in; Type is then the block's name.
	External *External `json:"external,omitempty"`
	// DeclRange is where the block was declared, for messages.
	DeclRange hcl.Range `json:"-"`
}

// SVID is one identity (or, with All, every identity of an issuer) kept
// fresh and delivered to writers and notifiers.
type SVID struct {
	// Name is the block's label. helper.conf's single identity is "default".
	Name string `json:"name"`
	// Issuer names the issuer. Default: the only issuer, when there is one.
	Issuer string `json:"issuer"`
	// SPIFFEID is the identity wanted; with the Workload API it selects
	// among the SVIDs offered. Default: "" (the first SVID offered; the dev
	// issuer uses spiffe://<trust domain>/<name>).
	SPIFFEID string `json:"spiffe_id,omitempty"`
	// Hint selects an SVID by its hint. Default: "".
	Hint string `json:"hint,omitempty"`
	// All delivers every X509-SVID the issuer offers. Default: false.
	All bool `json:"all,omitempty"`
	// X509 fetches X509-SVIDs and bundles. Default: true. A jwt-only
	// svid block sets x509 = false.
	X509 bool `json:"x509"`
	// JWT are the JWT-SVIDs to keep fresh.
	JWT []hostapi.JWTRequest `json:"jwt,omitempty"`
	// JWTBundles fetches the JWT bundles. Default: true when JWT is not
	// empty or a writer delivers a JWT bundle.
	JWTBundles bool `json:"jwt_bundles"`
	// TTL is the lifetime asked of issuers that sign on request. Default: 0
	// (the issuer's default).
	TTL time.Duration `json:"ttl,omitempty"`
	// RenewFraction is the fraction of a credential's lifetime after which
	// the core renews it from an issuer that does not push. Default: 0.5.
	RenewFraction float64 `json:"renew_fraction"`

	Writers   []Plugin   `json:"writers"`
	Notifiers []Notifier `json:"notifiers"`

	// DeclRange is where the block was declared, for messages.
	DeclRange hcl.Range `json:"-"`
}

// Notifier is a notifier instance with the core's settings for it.
type Notifier struct {
	Plugin
	// On is the set of changes that fire it. Default: x509 (a JWT refresh
	// does not signal an X.509 consumer).
	On hostapi.Changes `json:"on"`
	// Timeout bounds one Notify call. Default: 10s.
	Timeout time.Duration `json:"timeout"`
	// RetryBackoff is the first delay before a failed notification is
	// tried again; it doubles (jittered) up to the agent's maximum, 30s,
	// or up to RetryBackoff when that is longer. Default: the notifier's
	// own (notifier.signal: 1s), else 500ms.
	RetryBackoff time.Duration `json:"retry_backoff,omitempty"`
}

// Health configures the health listener.
type Health struct {
	// Enabled starts the listener (daemon mode only). Default: false.
	Enabled bool `json:"enabled"`
	// Address is the listen address. Default: "127.0.0.1:8081" in
	// agent.hcl; helper.conf's bind_port listens on all interfaces, as
	// spiffe-helper does.
	Address string `json:"address"`
	// LivenessPath is served 200 while no internal loop is wedged or
	// dead. Default: "/live".
	LivenessPath string `json:"liveness_path"`
	// ReadinessPath is served 200 while every output holds a current
	// credential. Default: "/ready".
	ReadinessPath string `json:"readiness_path"`
	// ExposeStatus serves /status and /metrics (SPIFFE IDs, serials,
	// plugin hashes, socket paths) to every client. Default: false, they
	// are served only on a loopback address; elsewhere the listener serves
	// the two probes alone.
	ExposeStatus bool `json:"expose_status"`
}

// StateDirectory returns StateDir, or [DefaultStateDir] when it is empty.
func (c *Config) StateDirectory() string {
	if c.StateDir != "" {
		return c.StateDir
	}
	return DefaultStateDir()
}

// Defaults.
const (
	DefaultFetchTimeout     = 30 * time.Second
	DefaultRenewFraction    = 0.5
	DefaultNotifyTimeout    = 10 * time.Second
	DefaultHealthAddress    = "127.0.0.1:8081"
	DefaultLivenessPath     = "/live"
	DefaultReadinessPath    = "/ready"
	DefaultSpiffeHelperPort = 8081
)
