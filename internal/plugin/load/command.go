//go:build unix && !svidagent_nogoplugin

package load

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/subproc"
)

// CommandRuntimeErr says why this build cannot run subprocess plugins;
// nil: it can.
func CommandRuntimeErr() error { return nil }

// commandConn is a go-plugin subprocess with the host services granted.
// dir, when set, is a temporary state directory removed at Close.
type commandConn struct {
	*subproc.Plugin
	services []string
	dir      string
}

func (c *commandConn) HostServices() []string { return c.services }

func (c *commandConn) Close() error {
	err := c.Plugin.Close()
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
	return err
}

// openCommand starts a go-plugin subprocess plugin, pinned under the
// state directory, under a memory limit on Linux.
func openCommand(ctx context.Context, e *config.External, env Env) (Conn, error) {
	svc, err := grants(e, env)
	if err != nil {
		return nil, err
	}
	state, temp := env.StateDir, ""
	if state == "" {
		if temp, err = os.MkdirTemp("", "svidagent-plugin-"); err != nil {
			return nil, fmt.Errorf("opening plugin %q: %w", e.Name, err)
		}
		state = temp
	}
	// Every command plugin runs under a memory limit on Linux, where one
	// can be set (RLIMIT_AS growth after start); elsewhere only an
	// explicit limit is applied, and fails the start with a clear error.
	mem := e.Limits.MemoryBytes
	if mem == 0 && runtime.GOOS == "linux" {
		mem = config.DefaultCommandMemory
	}
	p, err := subproc.Open(ctx, subproc.Config{
		Path:                 e.Path,
		SHA256:               e.SHA256,
		InsecureSkipChecksum: e.InsecureSkipChecksum,
		Kind:                 e.Kind,
		Name:                 e.Name,
		Logger:               env.Logger,
		StartTimeout:         e.StartTimeout,
		MemoryBytes:          mem,
		Services:             svc,
		StateDir:             filepath.Clean(state),
		OnRestart:            env.OnRestart,
	})
	if err != nil {
		if temp != "" {
			os.RemoveAll(temp)
		}
		return nil, err
	}
	return &commandConn{Plugin: p, services: svc.Names(), dir: temp}, nil
}

// inspectCommand starts the command plugin at path and asks what it is.
func inspectCommand(ctx context.Context, path, pin string) (Info, error) {
	if pin == "" {
		i, err := subproc.Inspect(ctx, path)
		return Info{ABIVersions: i.ABIVersions, SHA256: i.SHA256, Name: i.Name, Version: i.Version,
			Services: i.Services, Capabilities: i.Capabilities}, err
	}
	var in Info
	state, err := os.MkdirTemp("", "svidagent-inspect-")
	if err != nil {
		return in, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	defer os.RemoveAll(state)
	p, err := subproc.Open(ctx, subproc.Config{Path: path, SHA256: pin, Name: path, Kind: hostapi.KindNotifier,
		StateDir: state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return in, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	defer p.Close()
	in.SHA256, in.ABIVersions = p.SHA256(), []string{"v1"}
	d, err := adapter.Describe(ctx, p, "", []string{adapter.ServiceLogger})
	if err != nil {
		return in, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	in.Name, in.Version, in.Services, in.Capabilities = d.Name, d.Version, d.Services, d.Capabilities
	return in, nil
}
