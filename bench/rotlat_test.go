package bench_test

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// rotations is how many rotations each layout is timed over; the issue asks
// for at least 1,000. SVIDAGENT_BENCH_ROTATIONS overrides it.
func rotations() int {
	if n, err := strconv.Atoi(os.Getenv("SVIDAGENT_BENCH_ROTATIONS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// TestRotationLatency is the end-to-end rotation propagation latency, out
// of process: the bench pushes an X509-SVID update through the fake
// Workload API to the svidagent binary, whose files writer replaces the
// files and whose built-in signal notifier sends SIGUSR1 to the pid in its
// pid file, which is the bench's own pid. The clock starts just before the
// push and stops when the signal arrives; then the bench checks that the
// files hold the new SVID (serial, and a key that matches it).
//
// Each layout runs on the disk (os.TempDir) and on tmpfs (/dev/shm), which
// separates the fsync cost from the rest of the path.
func TestRotationLatency(t *testing.T) {
	n := rotations()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/bench")
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	// Pre-mint: minting is the issuer's cost, not the rotation path's.
	svids := make([]*x509svid.SVID, n+1)
	for i := range svids {
		svids[i] = ca.X509SVID(t, id)
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	type fsys struct{ name, base string }
	filesystems := []fsys{{"disk", os.TempDir()}}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		filesystems = append(filesystems, fsys{"tmpfs", "/dev/shm"})
	}
	for _, layout := range []string{"flat", "data"} {
		for _, fs := range filesystems {
			t.Run(layout+"/"+fs.name, func(t *testing.T) {
				base, err := os.MkdirTemp(fs.base, "svidagent-rotlat-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(base) })
				out := filepath.Join(base, "out")
				pidFile := filepath.Join(base, "bench.pid")
				writeFile(t, pidFile, strconv.Itoa(os.Getpid()))

				srv := fakeworkloadapi.New(t)
				srv.SetX509(svids[:1], bundles)
				writeFile(t, filepath.Join(base, "agent.hcl"), fmt.Sprintf(`
issuer "wapi" {
  type    = "workloadapi"
  address = %q
}

svid "bench" {
  writer "files" {
    dir    = %q
    layout = %q
  }
  notifier "signal" {
    pid_file = %q
    signal   = "SIGUSR1"
  }
}
`, srv.Addr(), out, layout, pidFile))
				a := startAgent(t, base, "run", "-config", "agent.hcl")
				cert, key := filepath.Join(out, "svid.pem"), filepath.Join(out, "svid_key.pem")

				// The first delivery: files written, then the signal.
				select {
				case <-sigs:
				case <-a.done:
					t.Fatal("svidagent exited before the first delivery")
				case <-time.After(30 * time.Second):
					t.Fatal("no signal for the first delivery within 30s")
				}
				if leaf, err := leafOf(cert, key); err != nil || !sameSerial(leaf.SerialNumber, svids[0].Certificates[0].SerialNumber) {
					t.Fatalf("after the first delivery: leaf %v, err %v; want serial %x", leaf, err, svids[0].Certificates[0].SerialNumber)
				}

				lat := make([]time.Duration, 0, n)
				var extra int // signals that were not the rotation's own
				for i := 1; i <= n; i++ {
					want := svids[i].Certificates[0].SerialNumber
					start := time.Now()
					srv.SetX509(svids[i:i+1], bundles)
					select {
					case <-sigs:
					case <-a.done:
						t.Fatalf("rotation %d: svidagent exited", i)
					case <-time.After(10 * time.Second):
						t.Fatalf("rotation %d: no signal within 10s", i)
					}
					lat = append(lat, time.Since(start))
					leaf, err := leafOf(cert, key)
					if err != nil {
						t.Fatalf("rotation %d: reading the files after the signal: %v", i, err)
					}
					if !sameSerial(leaf.SerialNumber, want) {
						t.Fatalf("rotation %d: the signal arrived but svid.pem holds serial %x, want %x", i, leaf.SerialNumber, want)
					}
					// A stray signal would stop the next clock early.
					select {
					case <-sigs:
						extra++
					default:
					}
				}
				if extra != 0 {
					t.Errorf("%d signals beyond one per rotation", extra)
				}
				p50, p99, mx := quantiles(lat)
				t.Logf("%s on %s (%s): %d rotations: p50 %s p99 %s max %s (load %s)", layout, fs.name, fs.base, n, p50, p99, mx, loadavg())
				figure("rotation-latency layout=%s fs=%s rotations=%d p50=%s p99=%s max=%s load=%q",
					layout, fs.name, n, p50.Round(time.Microsecond), p99.Round(time.Microsecond), mx.Round(time.Microsecond), loadavg())
			})
		}
	}
}
