package bench_test

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentBin is the svidagent binary under test, built once in TestMain the
// way make build builds it (CGO_ENABLED=0, -trimpath, -s -w).
var agentBin string

func TestMain(m *testing.M) {
	if os.Getenv("SVIDAGENT_BENCH") != "1" {
		fmt.Println("bench: set SVIDAGENT_BENCH=1 to run the benchmarks (docs/PERFORMANCE.md)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "svidagent-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "svidagent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", agentBin, "../cmd/svidagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building svidagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agent is a running svidagent whose log goes to a file: nothing in the
// bench process sits on the agent's output path.
type agentProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startAgent runs svidagent with args in dir.
func startAgent(t testing.TB, dir string, args ...string) *agentProc {
	t.Helper()
	return startProc(t, dir, agentBin, args...)
}

// startProc runs bin with args in dir, its output to dir/agent.log, and
// stops it (TERM, then KILL after 10 s) when the test ends.
func startProc(t testing.TB, dir, bin string, args ...string) *agentProc {
	t.Helper()
	logPath := filepath.Join(dir, "agent.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	a := &agentProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 16<<10 {
				b = b[len(b)-16<<10:]
			}
			t.Logf("svidagent log (tail):\n%s", b)
		}
	})
	return a
}

// exited reports whether the agent process is gone.
func (a *agentProc) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond (there is no event to wait on: the agent is another
// process) until it holds, the agent exits, or timeout passes.
func waitFor(t testing.TB, a *agentProc, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if a != nil && a.exited() {
			t.Fatalf("waiting for %s: svidagent exited", what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out after %s", what, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// leafOf parses the first certificate of a PEM file and checks that the
// key file holds its private key.
func leafOf(certPath, keyPath string) (*x509.Certificate, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(cb)
	if blk == nil {
		return nil, fmt.Errorf("parsing %s: no PEM block", certPath)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", certPath, err)
	}
	if keyPath == "" {
		return cert, nil
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	kblk, _ := pem.Decode(kb)
	if kblk == nil {
		return nil, fmt.Errorf("parsing %s: no PEM block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", keyPath, err)
	}
	pub, ok := k.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("the key does not belong to the certificate")
	}
	return cert, nil
}

func sameSerial(a, b *big.Int) bool { return a.Cmp(b) == 0 }

// quantiles returns p50, p99 and max of ds (which it sorts).
func quantiles(ds []time.Duration) (p50, p99, mx time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.5) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return at(0.50), at(0.99), ds[len(ds)-1]
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianInt(xs []int64) int64 {
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// procStat returns a process's utime+stime from /proc/<pid>/stat, in clock
// ticks (USER_HZ, 100 on Linux).
func procCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return ut + st, nil
}

// procStatus returns the named fields of /proc/<pid>/status as numbers
// (kB for the Vm* fields).
func procStatus(pid int, names ...string) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[k] {
			continue
		}
		n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %s in /proc/%d/status: %w", k, pid, err)
		}
		out[k] = n
	}
	return out, sc.Err()
}

// figure prints one result line that bench/run.sh collects.
func figure(format string, args ...any) {
	fmt.Printf("BENCH-FIGURE "+format+"\n", args...)
}

// loadavg is /proc/loadavg, reported with every figure.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
