package bench_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleWindow is how long the daemon is watched. SVIDAGENT_BENCH_IDLE
// overrides it (a Go duration).
func idleWindow() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SVIDAGENT_BENCH_IDLE")); err == nil && d > 0 {
		return d
	}
	return 60 * time.Second
}

// TestIdle runs the daemon with the dev issuer (1h TTL, so no renewal falls
// in the window), the files writer and the health endpoint, waits for the
// first delivery, then reads /proc/<pid>/stat (utime+stime), VmRSS and the
// context switch counters of every thread before and after the window.
// The test fails if the agent used more than 10 ms of CPU per minute.
func TestIdle(t *testing.T) {
	window := idleWindow()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`
issuer "dev" {
  ttl = "1h"
}

svid "idle" {
  spiffe_id = "spiffe://example.org/idle"
  writer "files" {
    dir = %q
  }
}

health {
  enabled = true
  address = "127.0.0.1:0"
}
`, out))
	a := startAgent(t, dir, "run", "-config", "agent.hcl")
	pid := a.cmd.Process.Pid
	waitFor(t, a, 30*time.Second, "the first delivery", func() bool {
		_, err := leafOf(filepath.Join(out, "svid.pem"), filepath.Join(out, "svid_key.pem"))
		return err == nil
	})
	// Let start-up settle (GC of the start-up garbage, the gRPC/HTTP
	// listeners) before the window opens.
	time.Sleep(2 * time.Second)

	cpu0, err := procCPUTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	cs0 := ctxSwitches(t, pid)
	time.Sleep(window) // the window is the measurement: there is nothing to wait for
	cpu1, err := procCPUTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	cs1 := ctxSwitches(t, pid)
	st, err := procStatus(pid, "VmRSS", "VmHWM", "Threads")
	if err != nil {
		t.Fatal(err)
	}
	// USER_HZ is 100 on Linux: one tick is 10 ms.
	cpuMS := float64(cpu1-cpu0) * 10
	perMin := cpuMS * float64(time.Minute) / float64(window)
	wakeups := cs1 - cs0
	t.Logf("idle %s: CPU %.0f ms (%.1f ms/min, tick resolution 10 ms), context switches (all threads) %d (%.1f/min), VmRSS %d KiB, VmHWM %d KiB, %d threads (load %s)",
		window, cpuMS, perMin, wakeups, float64(wakeups)*float64(time.Minute)/float64(window), st["VmRSS"], st["VmHWM"], st["Threads"], loadavg())
	figure("idle window=%s cpu_ms=%.0f cpu_ms_per_min=%.1f ctx_switches=%d rss_kib=%d hwm_kib=%d threads=%d load=%q",
		window, cpuMS, perMin, wakeups, st["VmRSS"], st["VmHWM"], st["Threads"], loadavg())
	if _, err := exec.LookPath("strace"); err == nil {
		sum := straceWindow(t, pid, window)
		t.Logf("strace -f -c over a second %s window:\n%s", window, sum)
		figure("idle-strace window=%s summary=%q", window, sum)
	} else {
		t.Logf("strace is not installed: no syscall summary (apt-get install strace)")
	}
	if perMin > 10 {
		t.Errorf("idle CPU %.1f ms/min, target ≤ 10", perMin)
	}
}

// ctxSwitches sums voluntary and involuntary context switches over all
// threads of pid: each is a wakeup (or a preemption) of some thread.
func ctxSwitches(t testing.TB, pid int) int64 {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			continue // the thread exited
		}
		for _, k := range []string{"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
			sum += fieldOf(string(b), k)
		}
	}
	return sum
}

func fieldOf(status, key string) int64 {
	for line := range strings.Lines(status) {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// straceWindow attaches strace -f -c to pid for d and returns its summary
// table: which syscalls the idle agent made, and how many. It is a
// separate window from the CPU one, because ptrace costs the tracee.
func straceWindow(t testing.TB, pid int, d time.Duration) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command("strace", "-f", "-c", "-o", out, "-p", strconv.Itoa(pid))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting strace: %v", err)
	}
	time.Sleep(d) // the window is the measurement
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Logf("strace: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("reading strace's summary: %v", err)
	}
	return string(b)
}
