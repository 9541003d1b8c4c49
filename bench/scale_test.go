package bench_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// logTail reads an agent's JSON log file incrementally.
type logTail struct {
	f   *os.File
	buf []byte
}

func openLogTail(t testing.TB, path string) *logTail {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &logTail{f: f}
}

// records returns the complete lines appended since the last call.
func (l *logTail) records() []map[string]any {
	chunk := make([]byte, 64<<10)
	for {
		n, err := l.f.Read(chunk)
		l.buf = append(l.buf, chunk[:n]...)
		if n == 0 || err == io.EOF {
			break
		}
	}
	var out []map[string]any
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		var r map[string]any
		if json.Unmarshal(l.buf[:i], &r) == nil {
			out = append(out, r)
		}
		l.buf = l.buf[i+1:]
	}
	return out
}

// scaleMax is the largest N TestScale runs: SVIDAGENT_BENCH_SCALE_MAX, by
// default 1000. At 1,000 the agent peaks at about 130 MiB (docs/PERFORMANCE.md §5).
func scaleMax() int {
	if n, err := strconv.Atoi(os.Getenv("SVIDAGENT_BENCH_SCALE_MAX")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// TestScale rotates N identities at once: the fake Workload API serves N
// X509-SVIDs, the agent has N svid blocks (one per SPIFFE ID), each with a
// files writer in its own directory. One push replaces all N SVIDs; the
// clock stops when the agent has logged a delivery of every new serial.
// The agent's peak RSS (VmHWM), RSS and OS threads after the rounds are
// reported (Go keeps a thread it created for a blocking syscall, so the
// thread count shows how many writes blocked at once).
func TestScale(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	type fsys struct{ name, base string }
	filesystems := []fsys{{"disk", os.TempDir()}}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		filesystems = append(filesystems, fsys{"tmpfs", "/dev/shm"})
	}
	const rounds = 3 // rotations per N; the median is reported
	for _, fs := range filesystems {
		for _, n := range []int{1, 10, 100, 1000} {
			if n > scaleMax() {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", fs.name, n), func(t *testing.T) {
				ids := make([]spiffeid.ID, n)
				for i := range ids {
					ids[i] = spiffeid.RequireFromPath(td, fmt.Sprintf("/w%04d", i))
				}
				mint := func() []*x509svid.SVID {
					s := make([]*x509svid.SVID, n)
					for i, id := range ids {
						s[i] = ca.X509SVID(t, id)
					}
					return s
				}
				sets := make([][]*x509svid.SVID, rounds+1)
				for i := range sets {
					sets[i] = mint()
				}
				base, err := os.MkdirTemp(fs.base, "svidagent-scale-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(base) })

				srv := fakeworkloadapi.New(t)
				srv.SetX509(sets[0], bundles)
				var cfg strings.Builder
				fmt.Fprintf(&cfg, "issuer \"wapi\" {\n  type = \"workloadapi\"\n  address = %q\n}\n", srv.Addr())
				for i, id := range ids {
					fmt.Fprintf(&cfg, "svid \"w%04d\" {\n  spiffe_id = %q\n  writer \"files\" {\n    dir = %q\n  }\n}\n",
						i, id.String(), filepath.Join(base, "out", fmt.Sprintf("w%04d", i)))
				}
				writeFile(t, filepath.Join(base, "agent.hcl"), cfg.String())
				a := startAgent(t, base, "run", "-config", "agent.hcl", "-log-format", "json")
				tail := openLogTail(t, a.log)

				// waitAll waits until every serial of set has been logged
				// delivered and returns when it happened.
				waitAll := func(set []*x509svid.SVID, timeout time.Duration) time.Time {
					want := make(map[string]bool, n)
					for _, s := range set {
						want[hex.EncodeToString(s.Certificates[0].SerialNumber.Bytes())] = true
					}
					waitFor(t, a, timeout, fmt.Sprintf("%d deliveries", n), func() bool {
						for _, r := range tail.records() {
							if r["msg"] == "credentials delivered" {
								if s, ok := r["serial"].(string); ok {
									delete(want, s)
								}
							}
						}
						return len(want) == 0
					})
					return time.Now()
				}
				startFirst := time.Now()
				first := waitAll(sets[0], 2*time.Minute).Sub(startFirst)

				var took []time.Duration
				for r := 1; r <= rounds; r++ {
					start := time.Now()
					srv.SetX509(sets[r], bundles)
					took = append(took, waitAll(sets[r], 2*time.Minute).Sub(start))
				}
				// Spot-check the files: the last identity holds its newest SVID.
				last := filepath.Join(base, "out", fmt.Sprintf("w%04d", n-1))
				leaf, err := leafOf(filepath.Join(last, "svid.pem"), filepath.Join(last, "svid_key.pem"))
				if err != nil || !sameSerial(leaf.SerialNumber, sets[rounds][n-1].Certificates[0].SerialNumber) {
					t.Fatalf("identity %d after the last round: %v, %v", n-1, leaf, err)
				}
				st, err := procStatus(a.cmd.Process.Pid, "VmRSS", "VmHWM", "Threads")
				if err != nil {
					t.Fatal(err)
				}
				med := median(took)
				t.Logf("%d identities on %s: first delivery %s (from process start), rotation all-at-once median %s of %v, %.1f µs/identity; VmRSS %d KiB VmHWM %d KiB, %d threads (load %s)",
					n, fs.name, first.Round(time.Millisecond), med.Round(time.Microsecond), took,
					float64(med.Microseconds())/float64(n), st["VmRSS"], st["VmHWM"], st["Threads"], loadavg())
				figure("scale fs=%s identities=%d first=%s rotate_median=%s per_identity_us=%.1f rss_kib=%d hwm_kib=%d threads=%d load=%q",
					fs.name, n, first.Round(time.Millisecond), med.Round(time.Microsecond), float64(med.Microseconds())/float64(n), st["VmRSS"], st["VmHWM"], st["Threads"], loadavg())
			})
		}
	}
}
