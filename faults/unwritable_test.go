package faults_test

import (
	"errors"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
	"golang.org/x/sys/unix"
)

// fault makes the output unwritable and then writable again. The tests run
// as root, for whom a read-only mode is no obstacle, so both variants make
// the output full instead.
type fault struct {
	name string
	// prepare sets up the output directory out before the agent starts.
	// It returns an error when the variant cannot run here.
	prepare func(t *testing.T, out string) error
	// fill makes writes to out fail; pid is the agent's.
	fill func(t *testing.T, out string, pid int)
	// free makes them succeed again.
	free func(t *testing.T, out string, pid int)
	// wantErr is the errno text the failure must carry.
	wantErr string
}

// tmpfsFault mounts a 64 KiB tmpfs on the output directory; a filler file
// takes all its space, and removing it is "space returns".
var tmpfsFault = fault{
	name: "tmpfs",
	prepare: func(t *testing.T, out string) error {
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
			return fmt.Errorf("mounting a tmpfs on %s: %w", out, err)
		}
		// Registered before the agent starts, so it runs after the agent
		// was killed.
		t.Cleanup(func() {
			if err := syscall.Unmount(out, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", out, err)
			}
		})
		return nil
	},
	fill: func(t *testing.T, out string, _ int) {
		f, err := os.Create(filepath.Join(out, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the tmpfs: %v", err)
				}
				return
			}
		}
	},
	free: func(t *testing.T, out string, _ int) {
		if err := os.Remove(filepath.Join(out, "filler")); err != nil {
			t.Fatal(err)
		}
	},
	wantErr: "no space left on device",
}

// rlimitFault lowers the agent's RLIMIT_FSIZE below the size of a
// certificate file with prlimit(2) on the running process, and raises it
// again: the same EFBIG that `ulimit -f` in a wrapper would give, but
// reversible without a restart, which is how "space returns" is modelled.
// The Go runtime ignores SIGXFSZ unless it is asked to deliver it, so the
// write fails with EFBIG instead of the process being killed.
var rlimitFault = fault{
	name:    "rlimit",
	prepare: func(*testing.T, string) error { return nil },
	fill: func(t *testing.T, _ string, pid int) {
		if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 64, Max: unix.RLIM_INFINITY}, nil); err != nil {
			t.Fatalf("lowering the agent's RLIMIT_FSIZE: %v", err)
		}
	},
	free: func(t *testing.T, _ string, pid int) {
		if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}, nil); err != nil {
			t.Fatalf("raising the agent's RLIMIT_FSIZE: %v", err)
		}
	},
	wantErr: "file too large",
}

// TestUnwritableOutput fills the output and rotates. Each failed write
// must leave the previous files byte-identical (no temporary or backup
// file left either), be logged, show in /ready's JSON as the output's
// last_error with a 503, and be retried; once space returns the retried
// write succeeds and readiness is 200 again. The agent stays live
// throughout.
func TestUnwritableOutput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  fault
		layout string
	}{
		{name: "tmpfs/flat", fault: tmpfsFault, layout: "flat"},
		{name: "tmpfs/data", fault: tmpfsFault, layout: "data"},
		{name: "rlimit/flat", fault: rlimitFault, layout: "flat"},
		{name: "rlimit/data", fault: rlimitFault, layout: "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := spiffeid.RequireTrustDomainFromString("example.org")
			id := spiffeid.RequireFromPath(td, "/unwritable")
			ca := testca.New(t, td)
			bundles := x509bundle.NewSet(ca.X509Bundle())
			svids := []*x509svid.SVID{ca.X509SVID(t, id), ca.X509SVID(t, id)}
			srv := fakeworkloadapi.New(t)
			srv.SetX509(svids[:1], bundles)

			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			if err := tc.fault.prepare(t, out); err != nil {
				// Not a hidden gap: the rlimit variant covers the same
				// promises wherever mounting is not allowed.
				t.Skipf("%v: this sandbox does not allow it; the rlimit variant runs instead", err)
			}
			port := freePort(t)
			writeFile(t, filepath.Join(dir, "agent.hcl"), nativeConfig(srv.Addr(), out, tc.layout, port, ""))
			p := startAgent(t, dir, "run", "-config", "agent.hcl")
			h := health{fmt.Sprintf("http://127.0.0.1:%d", port)}
			p.waitLog(t, 0, 30*time.Second, "the first delivery", delivered(serialHex(svids[0].Certificates[0])))
			testkit.WaitFor(t, 10*time.Second, "readiness 200", func() bool { c, _ := h.ready(); return c == http.StatusOK })
			before := snapshot(t, out)

			tc.fault.fill(t, out, p.cmd.Process.Pid)
			from := p.numRecords()
			srv.SetX509(svids[1:], bundles)
			writeFailed := func(r logRecord) bool {
				return r.Msg == "writing credentials failed; the previous files are intact and the write will be retried"
			}
			// The first failure and its first retry.
			for i := range 2 {
				idx := p.waitLog(t, from, 15*time.Second, fmt.Sprintf("write failure %d", i+1), writeFailed)
				if r := p.record(idx); !strings.Contains(r.Error, tc.fault.wantErr) {
					t.Errorf("logged error %q does not carry %q", r.Error, tc.fault.wantErr)
				}
				from = idx + 1
				after := snapshot(t, out)
				delete(after, "filler")
				if d := diffSnapshots(before, after); d != "" {
					t.Fatalf("after failed write %d the output is not what it was: %s", i+1, d)
				}
				code, st := h.ready()
				if code != http.StatusServiceUnavailable {
					t.Errorf("readiness %d after a failed write, want 503", code)
				}
				if len(st.SVIDs) != 1 || len(st.SVIDs[0].Outputs) != 1 || !strings.Contains(st.SVIDs[0].Outputs[0].LastError, tc.fault.wantErr) {
					t.Errorf("/ready does not show the write error (%q) as last_error: %+v", tc.fault.wantErr, st.SVIDs)
				}
				if c, _ := h.live(); c != http.StatusOK {
					t.Errorf("liveness %d with a full output; the agent itself is fine", c)
				}
			}
			checkX509Dir(t, out)

			tc.fault.free(t, out, p.cmd.Process.Pid)
			freed := time.Now()
			p.waitLog(t, from, 60*time.Second, "the retried write to succeed", delivered(serialHex(svids[1].Certificates[0])))
			recovery := time.Since(freed)
			testkit.WaitFor(t, 10*time.Second, "readiness 200 after space returned", func() bool { c, _ := h.ready(); return c == http.StatusOK })
			if got := serialHex(checkX509Dir(t, out)); got != serialHex(svids[1].Certificates[0]) {
				t.Errorf("serial on disk %s after recovery, want the new %s", got, serialHex(svids[1].Certificates[0]))
			}
			for name := range snapshot(t, out) {
				if strings.HasSuffix(name, ".svidagent-tmp") || strings.HasSuffix(name, ".svidagent-bak") {
					t.Errorf("leftover %s after recovery", name)
				}
			}
			fmt.Printf("FAULTS-FIGURE unwritable variant=%s recovery_after_space_returned=%s\n", tc.name, recovery.Round(time.Millisecond))
			if code := p.signalAndWait(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}
