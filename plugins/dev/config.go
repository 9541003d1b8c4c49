package dev

// Config configures the dev issuer (issuer.dev), an in-memory CA for demos
// and tests. NOT FOR PRODUCTION: its CA key lives in memory, is generated at
// start, and anyone who trusts its bundle trusts whatever it signs.
type Config struct {
	// TrustDomain is the CA's trust domain. Default: "example.org".
	TrustDomain string `hcl:"trust_domain,optional" json:"trust_domain"`
	// TTL is the lifetime of the X509-SVIDs and JWT-SVIDs it issues.
	// Default: "1m".
	TTL string `hcl:"ttl,optional" json:"ttl"`
	// CATTL is the CA certificate's lifetime. Default: "24h".
	CATTL string `hcl:"ca_ttl,optional" json:"ca_ttl"`
}

// DefaultConfig returns a Config with its defaults set.
func DefaultConfig() *Config {
	return &Config{TrustDomain: "example.org", TTL: "1m", CATTL: "24h"}
}

// SignsCSR reports that the dev issuer signs the core's requests, so an
// svid block using it must name its spiffe_id.
func (*Config) SignsCSR() bool { return true }
