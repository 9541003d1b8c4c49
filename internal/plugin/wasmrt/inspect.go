package wasmrt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
)

// Info is what `svidagent plugin inspect` prints about a module.
type Info struct {
	// ABIVersions are the versions of the svidagent_abi_vN markers the
	// module exports, e.g. ["v1"].
	ABIVersions []string
	// SHA256 is the lowercase hex sha256 of the file.
	SHA256 string
	// Exports are the names of the exported functions, sorted.
	Exports []string
	// Name, Version, Services and Capabilities are the plugin's answer to
	// Describe; empty when the module does not speak ABI v1.
	Name         string
	Version      string
	Services     []string
	Capabilities []string
}

// Inspect compiles the module at path (using cacheDir as Open does, if not
// empty), reads its exports and, if it speaks ABI v1, instantiates it and
// calls Describe, under the notifier deadline and without any grant. When
// the module fails the ABI check, Inspect returns what it found with the
// error.
func Inspect(ctx context.Context, path, cacheDir string) (Info, error) {
	var info Info
	code, sum, err := readModule(path)
	if err != nil {
		return info, fmt.Errorf("inspecting plugin: %w", err)
	}
	info.SHA256 = sum
	if funcs, mems, ok := rawExports(code); ok {
		for name := range funcs {
			info.Exports = append(info.Exports, name)
			if v, ok := strings.CutPrefix(name, abi.MarkerPrefix); ok {
				info.ABIVersions = append(info.ABIVersions, v)
			}
		}
		sort.Strings(info.Exports)
		sort.Strings(info.ABIVersions)
		if err := checkNames(funcs, mems); err != nil {
			return info, fmt.Errorf("inspecting plugin %s: %w", path, err)
		}
	}
	r, err := resolve(Config{Path: path, Name: path, Kind: hostapi.KindNotifier, CacheDir: cacheDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return info, err
	}
	p, err := compile(ctx, r, code, sum)
	if err != nil {
		return info, err
	}
	p.log = r.Logger
	defer p.Close()
	info.Exports, info.ABIVersions = nil, nil
	for name := range p.compiled.ExportedFunctions() {
		info.Exports = append(info.Exports, name)
		if v, ok := strings.CutPrefix(name, abi.MarkerPrefix); ok {
			info.ABIVersions = append(info.ABIVersions, v)
		}
	}
	sort.Strings(info.Exports)
	sort.Strings(info.ABIVersions)
	if err := checkExports(p.compiled); err != nil {
		return info, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	resp := &pluginv1.DescribeResponse{}
	if err := p.Invoke(ctx, adapter.MethodDescribe, &pluginv1.DescribeRequest{HostServices: p.HostServices()}, resp); err != nil {
		return info, fmt.Errorf("inspecting plugin %s: %w", path, err)
	}
	info.Name, info.Version = resp.GetName(), resp.GetVersion()
	info.Services, info.Capabilities = resp.GetServices(), resp.GetCapabilities()
	return info, nil
}
