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
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/svidagent/svidagent/bench/internal/distinct"
	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

func main() {
	path := flag.String("wasm", "", "the webhook notifier .wasm, or a comma-separated list of builds of it (required)")
	n := flag.Int("n", 10, "how many plugins to open")
	cache := flag.String("cache", "", "compilation cache directory (empty: none)")
	memprofile := flag.String("memprofile", "", "write a heap profile here once every plugin is open")
	calls = flag.Int("calls", 0, "then time this many Notify calls (4 KiB of paths) on the first plugin")
	engine = flag.String("engine", "", "wazero engine: compiler (default) or interpreter")
	distinctFlag = flag.Bool("distinct", false, "give each plugin its own copy of the module (a custom section appended: a new sha256, the same code), as distinct vendors' plugins would be")
	configJSON = flag.String("config", `{"url":"http://127.0.0.1:9/hook"}`, "the plugins' config, as JSON (the default is the webhook example's)")
	flag.Parse()
	if err := run(*path, *n, *cache, *memprofile); err != nil {
		fmt.Fprintln(os.Stderr, "wasmrss:", err)
		os.Exit(1)
	}
}

var (
	configJSON   *string
	calls        *int
	engine       *string
	distinctFlag *bool
)

func run(path string, n int, cache, memprofile string) error {
	if path == "" {
		return fmt.Errorf("-wasm is required")
	}
	paths := strings.Split(path, ",")
	if *distinctFlag {
		dir, err := os.MkdirTemp("", "wasmrss-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if paths, err = distinct.Copies(paths[0], dir, n); err != nil {
			return err
		}
	}
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
			Name: fmt.Sprintf("webhook-%d", i), Logger: log, CacheDir: cache, Engine: *engine,
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
		cfg := []byte(*configJSON)
		if err := p.Invoke(ctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: cfg}, &pluginv1.ConfigureResponse{}); err != nil {
			return fmt.Errorf("configuring plugin %d: %w", i, err)
		}
		report(i, time.Since(start))
	}
	smapsSummary()
	if *calls > 0 && len(plugins) > 0 {
		req := &notifierv1.NotifyRequest{Name: "bench", Paths: []string{strings.Repeat("p", 4096)}}
		for range 10 { // warm
			if err := plugins[0].Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{}); err != nil {
				return fmt.Errorf("notifying: %w", err)
			}
		}
		start := time.Now()
		for range *calls {
			if err := plugins[0].Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{}); err != nil {
				return fmt.Errorf("notifying: %w", err)
			}
		}
		fmt.Printf("notify calls=%d payload=4KiB per_call_us=%.1f\n", *calls, float64(time.Since(start).Microseconds())/float64(*calls))
	}
	if memprofile != "" {
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return err
		}
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

// smapsSummary prints the resident memory by kind of mapping: executable
// anonymous mappings hold compiled guest code; other anonymous ones the Go
// heap, stacks and the guests' linear memories; file mappings the binary.
func smapsSummary() {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	sums := map[string]int64{}
	kind := ""
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			switch {
			case len(f) >= 6:
				kind = "file"
			case strings.Contains(f[1], "x"):
				kind = "anon_exec"
			default:
				kind = "anon"
			}
			continue
		}
		if len(f) >= 2 && f[0] == "Rss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sums[kind] += n
		}
	}
	fmt.Printf("smaps rss_kib: anon_exec(compiled code)=%d anon(heap, stacks, linear memory)=%d file=%d\n", sums["anon_exec"], sums["anon"], sums["file"])
}
