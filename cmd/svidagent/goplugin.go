//go:build !svidagent_nogoplugin

// The go-plugin runtime's part of the CLI (plugin inspect, validate).
// Build with the tag svidagent_nogoplugin to leave it out; nogoplugin.go
// then answers.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/gopluginhost"
	"github.com/svidagent/svidagent/internal/hostsvc"
	"github.com/svidagent/svidagent/internal/pluginhost"
)

// commandRuntimeErr: this build runs command plugins.
func commandRuntimeErr() error { return nil }

// inspectCommand starts the command plugin at path and asks what it is.
// With pin, what runs is the pinned copy of the bytes that hashed to pin;
// without, the caller has allowed running the file unchecked.
func inspectCommand(ctx context.Context, path, pin string, in *inspection) error {
	if pin == "" {
		info, err := gopluginhost.Inspect(ctx, path)
		in.ABIVersions, in.SHA256 = info.ABIVersions, info.SHA256
		in.Name, in.Version, in.Services, in.Capabilities = info.Name, info.Version, info.Services, info.Capabilities
		return err
	}
	state, err := os.MkdirTemp("", "svidagent-inspect-")
	if err != nil {
		return fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	defer os.RemoveAll(state)
	p, err := gopluginhost.Open(ctx, gopluginhost.Config{Path: path, SHA256: pin, Name: path, Kind: hostapi.KindNotifier,
		StateDir: state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	defer p.Close()
	in.SHA256, in.ABIVersions = p.SHA256(), []string{"v1"}
	d, err := pluginhost.Describe(ctx, p, "", []string{pluginhost.ServiceLogger})
	if err != nil {
		return fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	in.Name, in.Version, in.Services, in.Capabilities = d.Name, d.Version, d.Services, d.Capabilities
	return nil
}

// openCommandForValidate starts the command plugin e, pinned in a
// temporary directory that is removed when the connection closes.
func openCommandForValidate(ctx context.Context, e *config.External, log *slog.Logger) (pluginhost.Conn, error) {
	dir, err := os.MkdirTemp("", "svidagent-validate-")
	if err != nil {
		return nil, err
	}
	p, err := gopluginhost.Open(ctx, gopluginhost.Config{
		Path: e.Path, SHA256: e.SHA256, InsecureSkipChecksum: e.InsecureSkipChecksum,
		Kind: e.Kind, Name: e.Name, Logger: log, StartTimeout: e.StartTimeout, StateDir: dir,
		Services: &hostsvc.Services{Logger: hostsvc.NewLogger(log, e.Name, 0)},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &tempDirConn{Conn: p, dir: dir}, nil
}

// tempDirConn removes the pin directory when closed.
type tempDirConn struct {
	pluginhost.Conn
	dir string
}

func (c *tempDirConn) Close() error {
	err := c.Conn.Close()
	os.RemoveAll(c.dir)
	return err
}
