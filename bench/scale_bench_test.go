package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// deliveryCounter is a slog handler that counts "credentials delivered"
// records and wakes a waiter: the in-process twin of reading the JSON log.
type deliveryCounter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
}

func (d *deliveryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (d *deliveryCounter) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d *deliveryCounter) WithGroup(string) slog.Handler            { return d }
func (d *deliveryCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "credentials delivered" {
		return nil
	}
	d.mu.Lock()
	d.n++
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	return nil
}

// wait blocks until n deliveries were counted in total.
func (d *deliveryCounter) wait(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		d.mu.Lock()
		got, ch := d.n, d.changed
		d.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			tb.Fatalf("%d of %d deliveries after %s", got, n, timeout)
		}
	}
}

// BenchmarkScaleInProcess is TestScale in-process, so that it can be
// profiled: the real workloadapi issuer and files writer, N svid blocks,
// the fake Workload API serving N X509-SVIDs. One op is one push that
// replaces all N SVIDs, until all N deliveries are logged. The files go
// to the disk (os.TempDir) and, where /dev/shm exists, to tmpfs.
//
//	SVIDAGENT_BENCH=1 go test -run '^$' -bench 'ScaleInProcess/fs=tmpfs/n=1000' -benchtime 3x -cpuprofile /tmp/scale.cpu -o /tmp/bench.test ./bench/
//	go tool pprof -top -cum /tmp/bench.test /tmp/scale.cpu
func BenchmarkScaleInProcess(b *testing.B) {
	type fsys struct{ name, base string }
	filesystems := []fsys{{"disk", os.TempDir()}}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		filesystems = append(filesystems, fsys{"tmpfs", "/dev/shm"})
	}
	for _, fs := range filesystems {
		for _, n := range []int{10, 100, 300, 1000} {
			b.Run(fmt.Sprintf("fs=%s/n=%d", fs.name, n), func(b *testing.B) { benchScale(b, fs.base, n) })
		}
	}
}

func benchScale(b *testing.B, dir string, n int) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(b, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	ids := make([]spiffeid.ID, n)
	for i := range ids {
		ids[i] = spiffeid.RequireFromPath(td, fmt.Sprintf("/w%04d", i))
	}
	sets := make([][]*x509svid.SVID, b.N+1)
	for r := range sets {
		sets[r] = make([]*x509svid.SVID, n)
		for i, id := range ids {
			sets[r][i] = ca.X509SVID(b, id)
		}
	}
	srv := fakeworkloadapi.New(b)
	srv.SetX509(sets[0], bundles)
	base, err := os.MkdirTemp(dir, "svidagent-scale-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(base) })
	var src strings.Builder
	fmt.Fprintf(&src, "issuer \"wapi\" {\n  type = \"workloadapi\"\n  address = %q\n}\n", srv.Addr())
	for i, id := range ids {
		fmt.Fprintf(&src, "svid \"w%04d\" {\n  spiffe_id = %q\n  writer \"files\" {\n    dir = %q\n  }\n}\n",
			i, id.String(), fmt.Sprintf("%s/out/w%04d", base, i))
	}
	cfg, err := config.Parse([]byte(src.String()), "agent.hcl")
	if err != nil {
		b.Fatal(err)
	}
	cfg.DaemonMode = true
	dc := &deliveryCounter{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.New(cfg, agent.WithLogger(slog.New(dc))).Run(ctx) }()
	defer func() { cancel(); <-done }()
	dc.wait(b, n, 2*time.Minute)
	b.ResetTimer()
	for r := 1; r <= b.N; r++ {
		srv.SetX509(sets[r], bundles)
		dc.wait(b, n*(r+1), 2*time.Minute)
	}
	b.StopTimer()
	b.ReportMetric(float64(srv.Streams(fakeworkloadapi.FetchX509SVID)), "x509-streams")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/identity")
}
