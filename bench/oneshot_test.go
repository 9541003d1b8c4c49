package bench_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/spiretest"
)

// TestOneShot runs a one-shot fetch (daemon_mode = false, spiffe-helper's
// helper.conf) against the real SPIRE ten times and reports the median
// wall time and the median of the child's max RSS (its rusage: the same
// number /usr/bin/time -v prints). Each run writes the X509-SVID, the
// bundle, a JWT-SVID and the JWT bundle.
func TestOneShot(t *testing.T) {
	const runs = 10
	spire := spiretest.Start(t, spiretest.Options{})
	id := "spiffe://" + spire.TrustDomain() + "/oneshot"
	spire.CreateEntry(t, id, spiretest.UIDSelector())

	var walls []time.Duration
	var rss []int64
	for i := range runs + 1 { // run 0 warms the page cache and is dropped
		dir := t.TempDir()
		writeHelperConf(t, dir, spire.SocketPath(), oneShotJWT)
		cmd := exec.Command(agentBin)
		cmd.Dir = dir
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		if _, err := leafOf(filepath.Join(dir, "certs", "svid.pem"), filepath.Join(dir, "certs", "svid_key.pem")); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		for _, f := range []string{"svid_bundle.pem", "jwt_svid.token", "bundle.json"} {
			if _, err := os.Stat(filepath.Join(dir, "certs", f)); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		if i == 0 {
			continue
		}
		walls = append(walls, wall)
		rss = append(rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	}
	w, r := median(walls), medianInt(rss)
	t.Logf("one-shot fetch against real SPIRE, %d runs: median wall %s (all %v), median max RSS %d KiB (all %v) (load %s)", runs, w.Round(100*time.Microsecond), walls, r, rss, loadavg())
	figure("oneshot runs=%d wall_median=%s maxrss_median_kib=%d load=%q", runs, w.Round(100*time.Microsecond), r, loadavg())
}
