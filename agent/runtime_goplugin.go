//go:build !svidagent_nogoplugin

// The go-plugin runtime (command plugins). Build with the tag
// svidagent_nogoplugin to leave it, hashicorp/go-plugin and its
// dependencies out of the binary; runtime_nogoplugin.go then answers.

package agent

import (
	"context"
	"path/filepath"
	"runtime"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/gopluginhost"
	"github.com/svidagent/svidagent/internal/hostsvc"
)

func init() { runtimes[config.RuntimeCommand] = openCommand }

// commandConn is a go-plugin subprocess with the host services granted.
type commandConn struct {
	*gopluginhost.Plugin
	services []string
}

func (c commandConn) HostServices() []string { return c.services }

// openCommand starts a go-plugin subprocess plugin, pinned under the state
// directory. It gets the Logger host service always, and HTTP when it is
// a notifier with allow { hosts }.
func openCommand(ctx context.Context, e *config.External, env runtimeEnv) (conn, error) {
	svc := &hostsvc.Services{Logger: hostsvc.NewLogger(env.a.log, e.Name, 0), Metrics: hostsvc.NewMetrics(env.a.metrics, e.Name)}
	if e.Kind == hostapi.KindNotifier && len(e.AllowHosts) > 0 {
		web, err := hostsvc.NewHTTP(hostsvc.HTTPConfig{AllowHosts: e.AllowHosts, MaxBodyBytes: int64(e.Limits.MaxReplyBytes)})
		if err != nil {
			return nil, err
		}
		svc.HTTP = web
	}
	// Every command plugin runs under a memory limit on Linux, where one
	// can be set (RLIMIT_AS growth after start); elsewhere only an
	// explicit limit is applied, and fails the start with a clear error.
	mem := e.Limits.MemoryBytes
	if mem == 0 && runtime.GOOS == "linux" {
		mem = config.DefaultCommandMemory
	}
	p, err := gopluginhost.Open(ctx, gopluginhost.Config{
		Path:                 e.Path,
		SHA256:               e.SHA256,
		InsecureSkipChecksum: e.InsecureSkipChecksum,
		Kind:                 e.Kind,
		Name:                 e.Name,
		Logger:               env.a.log,
		StartTimeout:         e.StartTimeout,
		MemoryBytes:          mem,
		Services:             svc,
		StateDir:             filepath.Clean(env.stateDir),
		OnRestart:            env.a.pluginRestarted(e.Name, e.Runtime),
	})
	if err != nil {
		return nil, err
	}
	return commandConn{Plugin: p, services: svc.Names()}, nil
}
