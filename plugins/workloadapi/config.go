package workloadapi

// Config configures the Workload API issuer (issuer.workloadapi).
type Config struct {
	// Address is the Workload API endpoint: "unix:///path", "/path" or
	// "tcp://host:port". Default: $SPIFFE_ENDPOINT_SOCKET, then
	// "unix:///tmp/spire-agent/public/api.sock". spiffe-helper: agent_address.
	Address string `hcl:"address,optional" json:"address"`
}

// DefaultConfig returns a Config with its defaults set. Address stays
// empty so that the environment is read when the issuer starts.
func DefaultConfig() *Config { return &Config{} }
