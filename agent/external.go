package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
)

// hostVersion is sent to plugins in Describe, for their messages.
const hostVersion = "svidagent"

// stateDir creates cfg's state directory, mode 0700, and returns it.
func (a *Agent) stateDir(cfg *Config) (string, error) {
	dir := cfg.StateDirectory()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating the state directory: %w; set state_dir to a writable directory", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("restricting the state directory: %w", err)
	}
	return dir, nil
}

// openExternal opens the plugin block e, once: every reference shares the
// instance. It returns the hostapi implementation of kind. With prev (a
// reload), the previous instance is kept when e is unchanged (keepExternal).
func (a *Agent) openExternal(ctx context.Context, b, prev *plugins, kind hostapi.Kind, e *config.External) (any, error) {
	p, ok := b.externals[e.Name]
	if !ok && prev != nil {
		p, ok = a.keepExternal(b, prev, e)
	}
	if !ok {
		dir, err := a.stateDir(b.cfg)
		if err != nil {
			return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
		}
		c, err := load.Open(ctx, e, load.Env{
			Logger:    a.log,
			StateDir:  dir,
			CacheDir:  filepath.Join(dir, "wasm-cache"),
			Metrics:   a.metrics,
			OnRestart: a.pluginRestarted(e.Name, e.Runtime),
		})
		if err != nil {
			return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
		}
		a.recordPin(e, c)
		var callTimeout time.Duration
		if e.Runtime == config.RuntimeCommand { // the WASM runtime enforces its own
			callTimeout = e.Limits.Timeout
			if callTimeout <= 0 {
				callTimeout = config.MaxPluginTimeout(kind)
			}
		}
		p, err = adapter.Open(ctx, c, adapter.Settings{
			Kind: kind, Name: e.Name, ConfigJSON: e.ConfigJSON, CallTimeout: callTimeout,
			Logger:      a.log.With("component", string(kind), "plugin", e.Name),
			HostVersion: hostVersion, HostServices: c.HostServices(),
		})
		if err != nil {
			return nil, fmt.Errorf("loading plugin %q: %w", e.Name, err)
		}
		b.externals[e.Name] = p
		b.all = append(b.all, p) // closed with the rest
		b.fresh = append(b.fresh, p)
		b.extState[e.Name] = extState{key: externalKey(e), sha256: fileSHA256(e.Path)}
		a.log.Info("plugin loaded", "component", string(kind), "plugin", e.Name, "runtime", e.Runtime,
			"name", p.Info().Name, "version", p.Info().Version, "service", p.Info().Service)
	}
	switch kind {
	case hostapi.KindIssuer:
		if i := p.Issuer(); i != nil {
			return i, nil
		}
	case hostapi.KindWriter:
		if w := p.Writer(); w != nil {
			return w, nil
		}
	case hostapi.KindNotifier:
		if n := p.Notifier(); n != nil {
			return n, nil
		}
	}
	return nil, fmt.Errorf("loading plugin %q: it was opened as a %s, not a %s", e.Name, p.Info().Service, kind)
}
