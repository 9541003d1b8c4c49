//go:build unix

package subproc

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
)

// Info is what `svidagent plugin inspect` prints about a subprocess
// plugin. Its fields match internal/plugin/wasmrt's Info where they mean the
// same.
type Info struct {
	// ABIVersions are the host API versions of the go-plugin handshake the
	// plugin completed, e.g. ["v1"].
	ABIVersions []string
	// SHA256 is the lowercase hex sha256 of the executable.
	SHA256 string
	// Name, Version, Services and Capabilities are the plugin's answer to
	// Describe.
	Name         string
	Version      string
	Services     []string
	Capabilities []string
}

// Inspect starts the executable at path (pinned in a temporary directory,
// without a checksum to compare with), calls Describe, and stops it.
func Inspect(ctx context.Context, path string) (Info, error) {
	var info Info
	state, err := os.MkdirTemp("", "svidagent-inspect-")
	if err != nil {
		return info, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	defer os.RemoveAll(state)
	p, err := Open(ctx, Config{Path: path, InsecureSkipChecksum: true, Name: path, Kind: hostapi.KindNotifier,
		StateDir: state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return info, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	defer p.Close()
	info.SHA256 = p.SHA256()
	info.ABIVersions = []string{"v1"}
	d, err := adapter.Describe(ctx, p, "", []string{adapter.ServiceLogger})
	if err != nil {
		return info, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	info.Name, info.Version, info.Services, info.Capabilities = d.Name, d.Version, d.Services, d.Capabilities
	return info, nil
}
