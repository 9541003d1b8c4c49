package faults_test

import (
	"context"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// procInfo is what the suite reads from /proc/<pid>/stat.
type procInfo struct {
	pid, ppid, pgid int
	start           uint64 // starttime, to tell a reused pid apart
	state           byte
}

// readProc returns the /proc/<pid>/stat fields the suite uses.
func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procInfo{}, false
	}
	// Fields after the command: state(3) ppid(4) pgrp(5) ... starttime(22).
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procInfo{pid: pid, ppid: ppid, pgid: pgid, start: start, state: f[0][0]}, true
}

// allProcs returns every process in /proc.
func allProcs() map[int]procInfo {
	m := map[int]procInfo{}
	des, _ := os.ReadDir("/proc")
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			m[pid] = p
		}
	}
	return m
}

// descendants returns the processes whose parent chain reaches root.
func descendants(procs map[int]procInfo, root int) []procInfo {
	var out []procInfo
	for _, p := range procs {
		for q, hops := p, 0; q.ppid > 1 && hops < 64; hops++ {
			if q.ppid == root {
				out = append(out, p)
				break
			}
			var ok bool
			if q, ok = procs[q.ppid]; !ok {
				break
			}
		}
	}
	return out
}

// TestShutdownUnderLoad sends SIGTERM while the fake Workload API pushes a
// new X509-SVID as fast as the agent takes them and an exec notifier's
// command (the recorder, which spawns a grandchild sleep in its process
// group) is signalled on each rotation. After exit: the code is 0, the
// files are complete and consistent, and nothing the agent started is
// left: no descendant seen before the signal survives (same pid and start
// time, not a zombie), and no process is left in the command's process
// group.
func TestShutdownUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout string
	}{
		{name: "flat-1", layout: "flat"},
		{name: "data", layout: "data"},
		{name: "flat-2", layout: "flat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := spiffeid.RequireTrustDomainFromString("example.org")
			id := spiffeid.RequireFromPath(td, "/shutdown")
			ca := testca.New(t, td)
			bundles := x509bundle.NewSet(ca.X509Bundle())
			svids := make([]*x509svid.SVID, 64)
			for i := range svids {
				svids[i] = ca.X509SVID(t, id)
			}
			srv := fakeworkloadapi.New(t)
			srv.SetX509(svids[:1], bundles)

			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			rec := filepath.Join(dir, "recorder.log")
			port := freePort(t)
			writeFile(t, filepath.Join(dir, "agent.hcl"), nativeConfig(srv.Addr(), out, tc.layout, port, fmt.Sprintf(`
  notifier "exec" {
    cmd          = %q
    args         = "-spawn %s"
    signal       = "SIGUSR1"
    stop_timeout = "5s"
  }
`, recorderBin, rec)))
			p := startAgent(t, dir, "run", "-config", "agent.hcl")
			p.waitLog(t, 0, 30*time.Second, "the first delivery", delivered(serialHex(svids[0].Certificates[0])))
			var child, grandchild int
			testkit.WaitFor(t, 30*time.Second, "the command and its grandchild to start", func() bool {
				for _, l := range lines(rec) {
					if s, ok := strings.CutPrefix(l, "start "); ok {
						child, _ = strconv.Atoi(strings.Fields(s)[0])
					}
					if s, ok := strings.CutPrefix(l, "child "); ok {
						grandchild, _ = strconv.Atoi(s)
					}
				}
				return child != 0 && grandchild != 0
			})

			// Push continuously: the next SVID as soon as the previous one
			// was sent on the agent's stream.
			ctx, cancel := context.WithCancel(context.Background())
			pusherDone := make(chan int, 1)
			go func() {
				n := 0
				for i := 1; ctx.Err() == nil; i++ {
					sent := srv.Sent(fakeworkloadapi.FetchX509SVID)
					srv.SetX509(svids[i%len(svids):i%len(svids)+1], bundles)
					if srv.WaitSent(ctx, fakeworkloadapi.FetchX509SVID, sent+1) == nil {
						n++
					}
				}
				pusherDone <- n
			}()
			pushed := -1
			stopPusher := func() {
				if pushed < 0 {
					cancel()
					pushed = <-pusherDone
				}
			}
			defer stopPusher()

			// Let deliveries and notifications flow, then SIGTERM.
			from := p.numRecords()
			for range 20 {
				from = p.waitLog(t, from, 10*time.Second, "deliveries under load", func(r logRecord) bool { return r.Msg == "credentials delivered" }) + 1
			}
			before := allProcs()
			tree := descendants(before, p.cmd.Process.Pid)
			if len(tree) < 2 {
				t.Fatalf("before SIGTERM the agent has %d descendants, want the command and its grandchild", len(tree))
			}
			code := p.signalAndWait(t, syscall.SIGTERM, 30*time.Second)
			stopPusher()

			if code != 0 {
				t.Errorf("exit code %d after SIGTERM under load, want 0", code)
			}
			leaf := checkX509Dir(t, out)
			if !strings.Contains(p.log(), serialHex(leaf)) {
				t.Errorf("the SVID on disk (%s) was never logged as delivered", serialHex(leaf))
			}
			var orphans []string
			for _, d := range tree {
				if now, ok := readProc(d.pid); ok && now.start == d.start && now.state != 'Z' {
					orphans = append(orphans, fmt.Sprintf("pid %d (was a descendant of the agent; now ppid %d)", d.pid, now.ppid))
				}
			}
			for _, q := range allProcs() {
				if q.pgid == child && q.state != 'Z' {
					orphans = append(orphans, fmt.Sprintf("pid %d in the command's process group %d", q.pid, child))
				}
			}
			if len(orphans) > 0 {
				t.Errorf("processes survived the agent's shutdown: %s", strings.Join(orphans, "; "))
			}
			if !strings.Contains(strings.Join(lines(rec), "\n"), "term") {
				t.Errorf("the command was not sent SIGTERM: %q", lines(rec))
			}
			t.Logf("%s: SIGTERM after %d pushes; %d descendants before, none after; exit %d", tc.name, pushed, len(tree), code)
		})
	}
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
