package wasmrt_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestSharedModuleIsolation opens two plugins of the same module, which
// share one runtime and one compiled module, with different grants, and
// checks that neither sees the other's: HTTP hosts, output directory,
// memory limit, environment and log.
func TestSharedModuleIsolation(t *testing.T) {
	var hits [2]atomic.Int64
	var servers [2]*httptest.Server
	for i := range servers {
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			fmt.Fprintf(w, "server-%d", i)
		}))
		defer servers[i].Close()
	}
	var (
		plugins [2]*wasmrt.Plugin
		logs    [2]*syncBuffer
		dirs    [2]string
	)
	for i := range plugins {
		cfg, buf := config(t, "notifier")
		cfg.Name = fmt.Sprintf("shared-%d", i)
		cfg.Kind = hostapi.KindWriter
		dirs[i] = t.TempDir()
		cfg.WriteDir = dirs[i]
		cfg.AllowHosts = []string{servers[i].Listener.Addr().String()}
		cfg.Limits.MemoryBytes = uint64(16+16*i) << 20 // 16 and 32 MiB
		plugins[i], logs[i] = open(t, cfg, fmt.Sprintf("config-%d", i)), buf
	}
	sum, _ := wasmrt.HashFile(guestPath("notifier"))
	if e, m := wasmrt.SharedRefs(cacheDir, sum); e < 2 || m < 2 {
		t.Fatalf("SharedRefs = engine %d, module %d; want both plugins on one runtime and one compiled module", e, m)
	}

	ctx := context.Background()
	for round := 0; round < 2; round++ { // the second round runs on fresh instances
		for i, p := range plugins {
			other := 1 - i
			tests := []struct {
				name string
				code codes.Code
				want string
			}{
				{name: "echo", code: codes.Unknown, want: fmt.Sprintf("config-%d", i)},
				{name: "http:" + servers[i].URL, code: codes.Unknown, want: fmt.Sprintf("http ok: server-%d", i)},
				{name: "http:" + servers[other].URL, code: codes.Unknown, want: "code 7"},
				{name: "write:/out/mine", code: codes.Unknown, want: "write succeeded"},
				{name: "log", code: codes.OK},
				{name: "oom", code: codes.ResourceExhausted, want: fmt.Sprintf("out of memory (limit %d MiB)", 16+16*i)},
			}
			for _, tt := range tests {
				err := notify(ctx, p, tt.name)
				if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.want) {
					t.Errorf("round %d: plugin %d: Notify(%q) = %v, want %v containing %q", round, i, tt.name, err, tt.code, tt.want)
				}
			}
		}
	}
	if hits[0].Load() != 2 || hits[1].Load() != 2 {
		t.Errorf("server hits = %d, %d; want 2 each (one per round, from its own plugin only)", hits[0].Load(), hits[1].Load())
	}
	for i := range plugins {
		plugins[i].Close()
		entries, _ := os.ReadDir(dirs[i])
		if len(entries) != 1 || entries[0].Name() != "mine" {
			t.Errorf("plugin %d's output directory holds %v, want only its own file", i, entries)
		}
		for _, r := range logs[i].Records(t) {
			if p, ok := r["plugin"]; ok && p != fmt.Sprintf("shared-%d", i) {
				t.Errorf("plugin %d's logger got a record of %v: %v", i, p, r)
			}
		}
		if r := logs[i].find(t, "notify log line"); r == nil {
			t.Errorf("plugin %d: its log line is missing", i)
		}
		if r := logs[i].find(t, fmt.Sprintf("configured config-%d", i)); r == nil {
			t.Errorf("plugin %d: its Configure log line is missing", i)
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), "mine")); err == nil {
		t.Error("a guest wrote outside its output directory")
	}
}

// TestSharedEngineHammer opens, calls and closes plugins of one module from
// several goroutines at once under -race: the shared runtime and compiled
// module are reference counted, and the last Close releases them.
func TestSharedEngineHammer(t *testing.T) {
	dir := cacheDir // warm: the test is about the references, not the compile
	cfg, _ := config(t, "notifier")
	sum, _ := wasmrt.HashFile(guestPath("notifier"))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				c := cfg
				c.Name = fmt.Sprintf("hammer-%d-%d", g, i)
				p, err := wasmrt.Open(context.Background(), c)
				if err != nil {
					errs <- err
					return
				}
				if err := notify(context.Background(), p, "ok"); status.Code(err) != codes.FailedPrecondition {
					errs <- fmt.Errorf("%s: Notify before Configure = %v, want the guest's FAILED_PRECONDITION", c.Name, err)
				}
				p.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if e, m := wasmrt.SharedRefs(dir, sum); e != 0 || m != 0 {
		t.Fatalf("after every Close: SharedRefs = engine %d, module %d; want 0, 0 (released)", e, m)
	}
}
