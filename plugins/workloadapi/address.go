package workloadapi

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/hostapi"
)

// DefaultAddress is the address used when neither the config nor
// $SPIFFE_ENDPOINT_SOCKET names one: SPIRE's default agent socket.
const DefaultAddress = "unix:///tmp/spire-agent/public/api.sock"

// Validate checks Address. It returns hostapi.FieldErrors.
func (c *Config) Validate() error {
	var errs hostapi.FieldErrors
	if c.Address != "" {
		if _, err := normalizeAddress(c.Address); err != nil {
			errs.Add("address", err.Error())
		}
	}
	return errs.Err()
}

// ResolvedAddress returns the address the issuer dials, normalised to a
// URI: Address, else $SPIFFE_ENDPOINT_SOCKET, else [DefaultAddress]. A bare
// path becomes a unix:// URI (a relative path is made absolute).
func (c *Config) ResolvedAddress() (string, error) {
	addr := c.Address
	if addr == "" {
		if env, ok := workloadapi.GetDefaultAddress(); ok && env != "" {
			a, err := normalizeAddress(env)
			if err != nil {
				return "", fmt.Errorf("reading $%s: %w", workloadapi.SocketEnv, err)
			}
			return a, nil
		}
		return DefaultAddress, nil
	}
	return normalizeAddress(addr)
}

// normalizeAddress turns addr into a URI go-spiffe accepts. Its errors say
// how to fix the address.
func normalizeAddress(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	switch {
	case addr == "":
		return "", fmt.Errorf("the address is empty; use \"unix:///path/to/agent.sock\", \"/path/to/agent.sock\" or \"tcp://IP:port\"")
	case strings.HasPrefix(addr, "unix://"), strings.HasPrefix(addr, "tcp://"):
	case strings.HasPrefix(addr, "npipe:"):
		// A Windows named pipe ("npipe:agent" for \\.\pipe\agent), as
		// go-spiffe takes it there; it validates below, per platform.
	case strings.HasPrefix(addr, "unix:"):
		// unix:/path is accepted by go-spiffe; unix:relative is not.
		if !strings.HasPrefix(addr, "unix:/") {
			return "", fmt.Errorf("%q is not a unix socket URI; write an absolute path, \"unix:///path/to/agent.sock\"", addr)
		}
	case strings.Contains(addr, "://"):
		scheme, _, _ := strings.Cut(addr, "://")
		return "", fmt.Errorf("%q has unsupported scheme %q; use \"unix:///path/to/agent.sock\", \"/path/to/agent.sock\" or \"tcp://IP:port\"", addr, scheme)
	default:
		// A bare path, as spiffe-helper's agent_address takes.
		p := addr
		if !filepath.IsAbs(p) {
			abs, err := filepath.Abs(p)
			if err != nil {
				return "", fmt.Errorf("making socket path %q absolute: %w; use an absolute path", addr, err)
			}
			p = abs
		}
		addr = "unix://" + p
	}
	if err := workloadapi.ValidateAddress(addr); err != nil {
		hint := "use \"unix:///path/to/agent.sock\", \"/path/to/agent.sock\" or \"tcp://IP:port\""
		switch {
		case strings.HasPrefix(addr, "tcp://"):
			hint = "use \"tcp://IP:port\" with a literal IP address and a port, for example \"tcp://127.0.0.1:8081\""
		case strings.HasPrefix(addr, "npipe:") && runtime.GOOS != "windows":
			hint = "named pipes (npipe:) are for windows; " + hint
		case runtime.GOOS == "windows":
			hint = "use \"npipe:NAME\" for the named pipe \\\\.\\pipe\\NAME, or \"tcp://IP:port\""
		}
		return "", fmt.Errorf("%q is not a valid Workload API address (%v); %s", addr, err, hint)
	}
	return addr, nil
}
