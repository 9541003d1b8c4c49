// Command wasmrss measures the host memory that WASM plugins cost: it opens
// N instances of the webhook notifier example (examples/notifier-webhook,
// built for GOOS=wasip1) through internal/plugin/wasmrt, exactly as the agent
// does, configures each (which instantiates the module), and prints its own
// VmRSS and VmHWM after each step.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o /tmp/webhook.wasm ./examples/notifier-webhook
//	go run ./bench/wasmrss -wasm /tmp/webhook.wasm -n 10
//
// Each line is "plugins=K rss_kib=... hwm_kib=...". Run it once per N: the
// process's high-water mark is what a host with N plugins needs.
//
// -wasm takes a comma-separated list: plugin K runs module K mod the list's
// length, so that distinct modules (which share the runtime but not the
// compiled code) can be measured too, e.g. builds of the example that
// differ by a -ldflags -X string.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

func main() {
	path := flag.String("wasm", "", "the webhook notifier .wasm, or a comma-separated list of builds of it (required)")
	n := flag.Int("n", 10, "how many plugins to open")
	cache := flag.String("cache", "", "compilation cache directory (empty: none)")
	flag.Parse()
	if err := run(*path, *n, *cache); err != nil {
		fmt.Fprintln(os.Stderr, "wasmrss:", err)
		os.Exit(1)
	}
}

func run(path string, n int, cache string) error {
	if path == "" {
		return fmt.Errorf("-wasm is required")
	}
	paths := strings.Split(path, ",")
	sums := make([]string, len(paths))
	for i, p := range paths {
		sum, err := wasmrt.HashFile(p)
		if err != nil {
			return fmt.Errorf("hashing %s: %w", p, err)
		}
		sums[i] = sum
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	report(0, 0)
	var plugins []*wasmrt.Plugin
	defer func() {
		for _, p := range plugins {
			p.Close()
		}
	}()
	for i := 1; i <= n; i++ {
		start := time.Now()
		p, err := wasmrt.Open(ctx, wasmrt.Config{
			Path: paths[(i-1)%len(paths)], SHA256: sums[(i-1)%len(paths)], Kind: hostapi.KindNotifier,
			Name: fmt.Sprintf("webhook-%d", i), Logger: log, CacheDir: cache,
			AllowHosts: []string{"127.0.0.1:9"},
		})
		if err != nil {
			return err
		}
		plugins = append(plugins, p)
		// Describe and Configure instantiate the module and run the
		// guest's initialisation: after them the plugin is as resident
		// as in a running agent.
		if err := p.Invoke(ctx, adapter.MethodDescribe, &pluginv1.DescribeRequest{HostServices: p.HostServices()}, &pluginv1.DescribeResponse{}); err != nil {
			return fmt.Errorf("describing plugin %d: %w", i, err)
		}
		cfg := []byte(`{"url":"http://127.0.0.1:9/hook"}`)
		if err := p.Invoke(ctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: cfg}, &pluginv1.ConfigureResponse{}); err != nil {
			return fmt.Errorf("configuring plugin %d: %w", i, err)
		}
		report(i, time.Since(start))
	}
	return nil
}

func report(k int, open time.Duration) {
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer f.Close()
	vals := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), ":")
		if ok && (key == "VmRSS" || key == "VmHWM") {
			vals[key], _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("plugins=%d open=%s rss_kib=%d hwm_kib=%d go_heap_inuse_kib=%d go_sys_kib=%d\n",
		k, open.Round(time.Millisecond), vals["VmRSS"], vals["VmHWM"], ms.HeapInuse>>10, ms.Sys>>10)
}
