package bench_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svidagent/svidagent/bench/internal/distinct"
	"github.com/svidagent/svidagent/internal/plugin/load"
)

// TestPluginColdStart is issue 10's start-up figure: one agent with the dev
// issuer, the files writer and ten distinct Go-SDK WASM notifiers (the
// notifier template, each copy with its own sha256, so nothing compiled is
// shared). It reports the time from exec to the first credential on disk,
// to every plugin loaded, and to every notifier having logged its
// notification, and the agent's VmRSS 10 s later: with an empty compilation cache
// (cold), then again with the cache the first run filled (warm).
//
//	SVIDAGENT_BENCH=1 go test -count=1 -v -timeout 30m -run TestPluginColdStart ./bench/
//
// SVIDAGENT_BENCH_PLUGINS overrides the ten.
func TestPluginColdStart(t *testing.T) {
	n := 10
	if v := os.Getenv("SVIDAGENT_BENCH_PLUGINS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			t.Fatalf("SVIDAGENT_BENCH_PLUGINS=%q: want a positive number", v)
		}
	}
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "notifier.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", tmpl, "../sdk/templates/notifier")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the notifier template: %v\n%s", err, out)
	}
	mods, err := distinct.Copies(tmpl, dir, n)
	if err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "state_dir = %q\n\nissuer \"dev\" {\n  ttl = \"1h\"\n}\n\n", filepath.Join(dir, "state"))
	for k, m := range mods {
		sum, err := load.HashFile(m)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "plugin \"n%d\" {\n  wasm   = %q\n  sha256 = %q\n  config {\n    message = \"rotated n%d\"\n  }\n}\n\n", k, m, sum, k)
	}
	out := filepath.Join(dir, "out")
	fmt.Fprintf(&cfg, "svid \"cold\" {\n  spiffe_id = \"spiffe://example.org/cold\"\n  writer \"files\" {\n    dir = %q\n  }\n", out)
	for k := range mods {
		fmt.Fprintf(&cfg, "  notifier \"n%d\" {}\n", k)
	}
	cfg.WriteString("}\n")
	writeFile(t, filepath.Join(dir, "agent.hcl"), cfg.String())

	for _, run := range []string{"cold", "warm"} {
		t.Run(run, func(t *testing.T) {
			if err := os.RemoveAll(out); err != nil { // the first credential is this run's
				t.Fatal(err)
			}
			start := time.Now()
			a := startAgent(t, dir, "run", "-config", "agent.hcl")
			var first, loaded, notified time.Duration
			waitFor(t, a, 5*time.Minute, "the first delivery and every plugin", func() bool {
				if first == 0 {
					if _, err := leafOf(filepath.Join(out, "svid.pem"), filepath.Join(out, "svid_key.pem")); err == nil {
						first = time.Since(start)
					}
				}
				b, _ := os.ReadFile(a.log)
				log := string(b)
				if loaded == 0 && strings.Count(log, `msg="plugin loaded"`) >= n {
					loaded = time.Since(start)
				}
				if notified == 0 && countNotified(log, n) == n {
					notified = time.Since(start)
				}
				return first != 0 && loaded != 0 && notified != 0
			})
			// RSS is read once start-up has settled (the collector has run
			// after the compiles); the wait is part of the measurement.
			time.Sleep(10 * time.Second)
			st, err := procStatus(a.cmd.Process.Pid, "VmRSS", "VmHWM")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s, %d distinct Go-SDK notifiers: first credential on disk %s, every plugin loaded %s, every notifier notified %s; VmRSS %d KiB, VmHWM %d KiB (load %s)",
				run, n, first.Round(time.Millisecond), loaded.Round(time.Millisecond), notified.Round(time.Millisecond), st["VmRSS"], st["VmHWM"], loadavg())
			figure("plugin-start cache=%s plugins=%d first_delivery=%s all_loaded=%s all_notified=%s rss_kib=%d hwm_kib=%d load=%q",
				run, n, first.Round(time.Millisecond), loaded.Round(time.Millisecond), notified.Round(time.Millisecond), st["VmRSS"], st["VmHWM"], loadavg())
			_ = a.cmd.Process.Signal(os.Interrupt)
			<-a.done
		})
	}
}

// countNotified counts the notifiers n0..n(n-1) whose message (msg="rotated
// nK", logged by the template on each notification) is in the text log.
func countNotified(log string, n int) int {
	c := 0
	for k := range n {
		if strings.Contains(log, fmt.Sprintf(`msg="rotated n%d"`, k)) {
			c++
		}
	}
	return c
}
