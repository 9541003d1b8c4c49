//go:build !svidagent_nogoplugin

// The go-plugin runtime's part of the CLI (plugin inspect, validate).
// Build with the tag svidagent_nogoplugin to leave it out; nogoplugin.go
// then answers.

package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/gopluginhost"
	"github.com/svidagent/svidagent/internal/hostsvc"
	"github.com/svidagent/svidagent/internal/pluginhost"
)

// inspectCommand starts the command plugin at path and asks what it is.
func inspectCommand(ctx context.Context, path string, in *inspection) error {
	info, err := gopluginhost.Inspect(ctx, path)
	in.ABIVersions, in.SHA256 = info.ABIVersions, info.SHA256
	in.Name, in.Version, in.Services, in.Capabilities = info.Name, info.Version, info.Services, info.Capabilities
	return err
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
