package wasmrt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCompilationCache checks the cache dir and reports (does not assert)
// the cold and warm Open times.
func TestCompilationCache(t *testing.T) {
	// The shared cache dir is cold for the notifier guest when this test
	// runs first (it is first in the file), which spares the slow compile
	// a second time.
	dir := cacheDir
	cfg, _ := config(t, "notifier")
	var took [2]time.Duration
	for i := range took {
		start := time.Now()
		p, err := wasmrt.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		took[i] = time.Since(start)
		p.Close()
	}
	t.Logf("Open cold %s, warm %s", took[0], took[1])
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode %v, want 0700", fi.Mode().Perm())
	}
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n == 0 {
		t.Fatal("nothing cached")
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name   string
		guest  string
		modify func(*wasmrt.Config)
		want   []string
	}{
		{name: "missing marker", guest: "nomarker", want: []string{"does not export svidagent_abi_v1"}},
		{name: "wrong marker", guest: "wrongmarker", want: []string{"plugin speaks ABI v2; this agent supports ABI v1"}},
		{name: "missing export", guest: "nocall", want: []string{"svidagent_call is not exported"}},
		{name: "command module", guest: "command", want: []string{"_start is exported", "build a reactor"}},
		{name: "sha256 mismatch", guest: "notifier", modify: func(c *wasmrt.Config) { c.SHA256 = strings.Repeat("ab", 32) },
			want: []string{"sha256 mismatch: config pins " + strings.Repeat("ab", 32) + ", file has ", "svidagent plugin hash ", "update sha256 in the plugin block"}},
		{name: "sha256 missing", guest: "notifier", modify: func(c *wasmrt.Config) { c.SHA256 = "" }, want: []string{"sha256 is required"}},
		{name: "memory over ceiling", guest: "notifier", modify: func(c *wasmrt.Config) { c.Limits.MemoryBytes = 64 << 20 }, want: []string{"exceeds the ceiling of 32 MiB"}},
		{name: "timeout over ceiling", guest: "notifier", modify: func(c *wasmrt.Config) { c.Limits.CallTimeout = 3 * time.Second }, want: []string{"ceiling for a notifier"}},
		{name: "write dir for a notifier", guest: "notifier", modify: func(c *wasmrt.Config) { c.WriteDir = t.TempDir() }, want: []string{"only for writers"}},
		{name: "bad allowed host", guest: "notifier", modify: func(c *wasmrt.Config) { c.AllowHosts = []string{"http://x"} }, want: []string{"not a URL"}},
		{name: "missing file", guest: "notifier", modify: func(c *wasmrt.Config) { c.Path += ".nope" }, want: []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := config(t, tt.guest)
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			p, err := wasmrt.Open(context.Background(), cfg)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestInsecureSkipChecksumWarns(t *testing.T) {
	cfg, logs := config(t, "notifier")
	cfg.SHA256, cfg.InsecureSkipChecksum = "", true
	for i := 0; i < 2; i++ {
		p, err := wasmrt.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	n := 0
	for _, r := range logs.Records(t) {
		if r["level"] == "WARN" && strings.Contains(r["msg"].(string), "insecure_skip_checksum") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("got %d warnings for 2 Opens, want 2", n)
	}
}

// TestHostile makes the guest misbehave in every way it can on request, and
// checks that each call fails clearly and the next call succeeds on a fresh
// instance that had Configure replayed.
func TestHostile(t *testing.T) {
	cfg, logs := config(t, "notifier")
	cfg.Limits.CallTimeout = time.Second
	cfg.Limits.MemoryBytes = 16 << 20
	cfg.Limits.MaxReplyBytes = 64 << 10
	p := open(t, cfg, `{"v":"configured-1"}`)
	ctx := context.Background()

	tests := []struct {
		name string
		code codes.Code
		want []string
	}{
		{name: "loop", code: codes.DeadlineExceeded, want: []string{`plugin "test-notifier": call Notify: deadline 1s exceeded; the instance was discarded`}},
		{name: "sleep", code: codes.DeadlineExceeded, want: []string{"deadline 1s exceeded; the instance was discarded"}},
		{name: "oom", code: codes.ResourceExhausted, want: []string{"out of memory (limit 16 MiB); the instance was discarded"}},
		{name: "panic", code: codes.Internal, want: []string{"panic: boom", "the instance was discarded"}},
		{name: "big", code: codes.ResourceExhausted, want: []string{"reply of 1048584 bytes exceeds the limit of 65536 bytes"}},
		{name: "garbage", code: codes.Internal, want: []string{"malformed envelope", "the instance was discarded"}},
		{name: "badptr", code: codes.Internal, want: []string{"outside the guest's memory", "the instance was discarded"}},
		{name: "open:/etc/passwd", code: codes.Unknown, want: []string{"open failed"}},
		{name: "open:../../../../etc/passwd", code: codes.Unknown, want: []string{"open failed"}},
		{name: "write:/tmp/wasmrt-escape", code: codes.Unknown, want: []string{"write failed"}},
		{name: "http:http://127.0.0.1:1/", code: codes.Unknown, want: []string{"code 7", "not granted"}},
		{name: "no-such-behaviour", code: codes.InvalidArgument, want: []string{"unknown behaviour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify(ctx, p, tt.name)
			if status.Code(err) != tt.code {
				t.Fatalf("Notify(%q) = %v, want code %v", tt.name, err, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// The plugin keeps working, and a fresh instance was configured.
			if err := notify(ctx, p, "ok"); err != nil {
				t.Fatalf("Notify after %q: %v", tt.name, err)
			}
			err = notify(ctx, p, "echo")
			if status.Code(err) != codes.Unknown || status.Convert(err).Message() != `{"v":"configured-1"}` {
				t.Fatalf("echo after %q = %v, want the configured value", tt.name, err)
			}
		})
	}
	if _, err := os.Stat("/tmp/wasmrt-escape"); err == nil {
		t.Fatal("the guest wrote /tmp/wasmrt-escape")
	}
	// Discarded instances were replaced and reconfigured: one Configure
	// log line per instance.
	n := 0
	for _, r := range logs.Records(t) {
		if r["msg"] == `configured {"v":"configured-1"}` {
			n++
		}
	}
	if n < 7 {
		t.Errorf("%d instances were configured, want the first plus one per discarded instance (>= 7)", n)
	}
	if r := logs.find(t, "panic: boom"); r == nil || r["stream"] != "stderr" || r["plugin"] != "test-notifier" {
		t.Errorf("guest stderr not forwarded with its tags: %v", r)
	}
}

func TestCallerContext(t *testing.T) {
	cfg, _ := config(t, "notifier")
	p := open(t, cfg, `{}`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := notify(ctx, p, "sleep")
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "deadline 100ms exceeded") {
		t.Fatalf("Notify(sleep) under a 100ms context = %v, want the caller's deadline", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := notify(ctx, p, "ok"); status.Code(err) != codes.Canceled {
		t.Fatalf("Notify on a canceled context = %v, want CANCELED", err)
	}
	if err := notify(context.Background(), p, "ok"); err != nil {
		t.Fatalf("Notify afterwards: %v", err)
	}
}

func TestWriterFilesystem(t *testing.T) {
	out := t.TempDir()
	cfg, _ := config(t, "notifier")
	cfg.Kind, cfg.WriteDir = hostapi.KindWriter, out
	p := open(t, cfg, `{}`)
	tests := []struct {
		name string
		want string
	}{
		{name: "write:/out/cert.pem", want: "write succeeded"},
		{name: "open:/out/cert.pem", want: "open succeeded: 1 bytes"},
		{name: "write:/tmp/wasmrt-writer-escape", want: "write failed"},
		{name: "write:/out/../escape", want: "write failed"},
		{name: "open:/etc/passwd", want: "open failed"},
		{name: "open:/out/../../etc/passwd", want: "open failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify(context.Background(), p, tt.name)
			if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, tt.want) {
				t.Fatalf("Notify(%q) = %q, want %q", tt.name, msg, tt.want)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(out, "cert.pem")); err != nil || string(b) != "x" {
		t.Fatalf("the file written to /out is not in WriteDir: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "escape")); err == nil {
		t.Fatal("the guest escaped /out")
	}
}

func TestHTTPAllowlist(t *testing.T) {
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }))
	defer allowed.Close()
	var deniedHits atomic.Int64
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { deniedHits.Add(1) }))
	defer denied.Close()

	cfg, _ := config(t, "notifier")
	cfg.AllowHosts = []string{allowed.Listener.Addr().String()} // 127.0.0.1:port only
	p := open(t, cfg, `{}`)
	if got := p.HostServices(); len(got) != 2 || got[1] != "svidagent.host.v1.HTTP" {
		t.Fatalf("HostServices() = %v, want Logger and HTTP", got)
	}
	err := notify(context.Background(), p, "http:"+allowed.URL)
	if msg := status.Convert(err).Message(); msg != "http ok: pong" {
		t.Fatalf("allowed request: %q", msg)
	}
	err = notify(context.Background(), p, "http:"+denied.URL)
	msg := status.Convert(err).Message()
	for _, w := range []string{"code 7", denied.Listener.Addr().String(), "allow { hosts = [...] }"} {
		if !strings.Contains(msg, w) {
			t.Errorf("denied request message %q does not contain %q", msg, w)
		}
	}
	if deniedHits.Load() != 0 {
		t.Fatal("a connection reached the denied server")
	}
}

func TestLogging(t *testing.T) {
	cfg, logs := config(t, "notifier")
	p := open(t, cfg, `{}`)
	if err := notify(context.Background(), p, "log"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	r := logs.find(t, "notify log line")
	if r == nil || r["level"] != "WARN" || r["component"] != "plugin" || r["plugin"] != "test-notifier" {
		t.Errorf("log import record = %v", r)
	}
	r = logs.find(t, "stdout line")
	if r == nil || r["stream"] != "stdout" || r["plugin"] != "test-notifier" {
		t.Errorf("stdout record = %v", r)
	}
}

func TestLogRateLimit(t *testing.T) {
	cfg, logs := config(t, "notifier")
	cfg.Limits.LogLinesPerSecond = 1 // burst 2
	p := open(t, cfg, `{}`)          // Configure logs one line
	for i := 0; i < 5; i++ {
		if err := notify(context.Background(), p, "log"); err != nil { // two lines each
			t.Fatal(err)
		}
	}
	p.Close() // flushes the drop summary
	var lines, dropped int
	for _, r := range logs.Records(t) {
		if r["component"] != "plugin" {
			continue
		}
		if d, ok := r["dropped"].(float64); ok {
			dropped += int(d)
		} else {
			lines++
		}
	}
	if lines+dropped != 11 || lines > 4 {
		t.Fatalf("%d lines logged and %d dropped, want 11 in all with at most a few logged", lines, dropped)
	}
}

func TestCloseIdempotent(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg, _ := config(t, "notifier")
	p, err := wasmrt.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := notify(context.Background(), p, "ok"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Notify before Configure = %v, want the guest's FAILED_PRECONDITION", err)
	}
	for i := 0; i < 2; i++ {
		if err := p.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := notify(context.Background(), p, "ok"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Notify after Close = %v, want FAILED_PRECONDITION", err)
	}
	// No goroutine outlives Close (wazero's per-call watchers exit with
	// the call).
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before Open", n, before)
	}
}

// TestHammer runs concurrent calls on one plugin under -race, with
// failures mixed in, and checks every call got its own answer.
func TestHammer(t *testing.T) {
	cfg, _ := config(t, "notifier")
	p := open(t, cfg, `hammer`)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				name := []string{"ok", "echo", "panic", "ok"}[(g+i)%4]
				err := notify(context.Background(), p, name)
				switch name {
				case "ok":
					if err != nil {
						errs <- fmt.Errorf("ok: %w", err)
					}
				case "echo":
					if status.Convert(err).Message() != "hammer" {
						errs <- fmt.Errorf("echo: %v", err)
					}
				case "panic":
					if status.Code(err) != codes.Internal {
						errs <- fmt.Errorf("panic: %v", err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // HostServices races with the calls
		defer wg.Done()
		p.HostServices()
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p.Close()
	if err := notify(context.Background(), p, "ok"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("after Close: %v", err)
	}
}

func TestInspect(t *testing.T) {
	info, err := wasmrt.Inspect(context.Background(), guestPath("notifier"), cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := wasmrt.HashFile(guestPath("notifier"))
	if info.Name != "test-notifier" || info.Version != "0.1.0" || info.SHA256 != sum ||
		len(info.ABIVersions) != 1 || info.ABIVersions[0] != "v1" || len(info.Services) != 2 {
		t.Fatalf("Inspect = %+v", info)
	}
	info, err = wasmrt.Inspect(context.Background(), guestPath("wrongmarker"), cacheDir)
	if err == nil || len(info.ABIVersions) != 1 || info.ABIVersions[0] != "v2" {
		t.Fatalf("Inspect(wrongmarker) = %+v, %v; want ABI v2 and an error", info, err)
	}
}

func TestHashFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x")
	os.WriteFile(f, []byte("abc"), 0o600)
	got, err := wasmrt.HashFile(f)
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; err != nil || got != want {
		t.Fatalf("HashFile = %s, %v; want %s", got, err, want)
	}
	if _, err := wasmrt.HashFile(f + ".nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("HashFile(missing) = %v", err)
	}
}

func BenchmarkInvokeNotify(b *testing.B) {
	for _, engine := range []string{wasmrt.EngineCompiler, wasmrt.EngineInterpreter} {
		b.Run(engine, func(b *testing.B) {
			cfg, _ := config(b, "notifier")
			cfg.Engine = engine
			p := open(b, cfg, `{}`)
			req := &notifierv1.NotifyRequest{Name: "ok", Paths: []string{strings.Repeat("p", 4096)}}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := p.Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{}); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the whole process (both sides of the call,
			// wazero's per-call goroutines, the collector) per call: less
			// disturbed by other load on the machine than ns/op.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestEngines opens the test notifier under each engine and calls it, and
// refuses an engine that does not exist.
func TestEngines(t *testing.T) {
	for _, engine := range []string{"", wasmrt.EngineCompiler, wasmrt.EngineInterpreter} {
		t.Run("engine="+engine, func(t *testing.T) {
			cfg, _ := config(t, "notifier")
			cfg.Engine = engine
			p := open(t, cfg, `{}`)
			if err := p.Invoke(context.Background(), adapter.MethodNotify, &notifierv1.NotifyRequest{Name: "ok"}, &notifierv1.NotifyResponse{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	cfg, _ := config(t, "notifier")
	cfg.Engine = "jit"
	if p, err := wasmrt.Open(context.Background(), cfg); err == nil {
		p.Close()
		t.Fatal("Open with engine \"jit\" succeeded")
	} else if !strings.Contains(err.Error(), `unknown engine "jit"`) {
		t.Fatalf("error %q does not name the unknown engine", err)
	}
}

func BenchmarkOpen(b *testing.B) {
	cfg, _ := config(b, "notifier")
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cfg.CacheDir = filepath.Join(b.TempDir(), "cache")
			p, err := wasmrt.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	})
	b.Run("warm", func(b *testing.B) {
		cfg.CacheDir = filepath.Join(b.TempDir(), "cache")
		p, err := wasmrt.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p, err := wasmrt.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	})
	// Another plugin of a module that an open plugin holds already: no
	// compile, no cache read, only the plugin's own setup.
	b.Run("shared", func(b *testing.B) {
		first, err := wasmrt.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer first.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p, err := wasmrt.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	})
}
