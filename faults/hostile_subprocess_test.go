package faults_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	"github.com/svidagent/svidagent/internal/testkit"
	"golang.org/x/sys/unix"
)

// The hostile subprocess suite (issue 14, subprocess side): go-plugin
// plugins and exec commands that try to outlive the agent, flood its log,
// or misbehave at start, against the real svidagent binary.

// buildHostile builds faults/testdata/hostile-subprocess with its start
// behaviour set to start, and returns its path and sha256.
func buildHostile(t *testing.T, dir, start string) (path, sum string) {
	t.Helper()
	path = filepath.Join(dir, "hostile-"+start)
	c := exec.Command("go", "build", "-ldflags", "-X main.start="+start, "-o", path, "./testdata/hostile-subprocess")
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", path, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return path, hex.EncodeToString(s[:])
}

// hostileWAPI is a fake Workload API serving one X509-SVID.
func hostileWAPI(t *testing.T) *fakeworkloadapi.Server {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	srv := fakeworkloadapi.New(t)
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, spiffeid.RequireFromPath(td, "/hostile"))}, x509bundle.NewSet(ca.X509Bundle()))
	return srv
}

// markedProcs returns the live (not zombie) processes with
// SVIDAGENT_TEST_MARKER=marker in their environment, except skip.
func markedProcs(marker string, skip int) []int {
	want := []byte("SVIDAGENT_TEST_MARKER=" + marker + "\x00")
	des, _ := os.ReadDir("/proc")
	var pids []int
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == skip {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", de.Name(), "environ"))
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if p, ok := readProc(pid); ok && p.state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// survivors waits, on pidfds (events, not polls), up to timeout for each
// of pids to exit, and returns those still running.
func survivors(t *testing.T, pids []int, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var left []int
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			t.Fatalf("pidfd_open(%d): %v", pid, err)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, int(max(time.Until(deadline), 0).Milliseconds()))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
			if n == 0 {
				left = append(left, pid)
			}
			break
		}
		unix.Close(fd)
	}
	return left
}

// killAgent SIGKILLs the agent and waits for it to exit. Not on p.done:
// that also waits for the end of the agent's stderr, which a surviving
// descendant that inherited it would hold open.
func killAgent(t *testing.T, p *agentProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if left := survivors(t, []int{p.cmd.Process.Pid}, 10*time.Second); len(left) > 0 {
		t.Fatal("the agent survived SIGKILL")
	}
}

func killAll(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestNoSubprocessOutlivesKilledAgent SIGKILLs the agent while a go-plugin
// plugin and a helper.conf cmd have each left a process behind in a new
// session (setsid) that ignores SIGTERM, and asserts that none of the
// processes found by their marker survives: the plugin's pid namespace
// dies with the plugin, and the command's reaper sees its control pipe
// close and stops everything under it (SIGTERM, SIGKILL after 5 s).
func TestNoSubprocessOutlivesKilledAgent(t *testing.T) {
	goPlugin := func(t *testing.T) {
		dir := t.TempDir()
		bin, sum := buildHostile(t, dir, "")
		srv := hostileWAPI(t)
		marker := fmt.Sprintf("faults-goplugin-%d", time.Now().UnixNano())
		writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`state_dir = "state"

plugin "spawner" {
  command = %q
  sha256  = %q
  config {
    mode   = "spawn"
    marker = %q
  }
}
`, bin, sum, marker)+nativeConfig(srv.Addr(), filepath.Join(dir, "out"), "flat", freePort(t), `  notifier "spawner" {}`))
		p := startAgent(t, dir, "run", "-config", "agent.hcl")
		p.waitLog(t, 0, 60*time.Second, "the plugin's spawned line", func(r logRecord) bool { return r.Msg == "spawned" })
		t.Cleanup(func() { killAll(markedProcs(marker, 0)) })
		// The plugin logs "spawned" once its sh has started; the sh may
		// still be exec'ing sleep, when its environ cannot be read.
		var escaped []int
		testkit.WaitFor(t, 10*time.Second, "the plugin's setsid grandchild", func() bool {
			escaped = markedProcs(marker, 0)
			return len(escaped) > 0
		})
		plugins := pluginProcs(filepath.Join(dir, "state", "plugins"))
		killAgent(t, p)
		var pids []int
		for _, q := range plugins {
			pids = append(pids, q.pid)
		}
		pids = append(pids, escaped...)
		if left := survivors(t, pids, 10*time.Second); len(left) > 0 {
			t.Fatalf("processes survived the SIGKILLed agent: %v (plugin processes %v, marked %v)", left, plugins, escaped)
		}
		if left := markedProcs(marker, 0); len(left) > 0 {
			t.Fatalf("marked processes survived the SIGKILLed agent: %v", left)
		}
		t.Logf("%d plugin processes and %d setsid grandchildren gone after SIGKILL", len(plugins), len(escaped))
	}
	t.Run("go-plugin", goPlugin)
	// Where the kernel refuses pid namespaces, the plugin runs under the
	// reaper instead; the switch forces that path here.
	t.Run("go-plugin without pid namespace", func(t *testing.T) {
		t.Setenv("SVIDAGENT_PLUGIN_PIDNS", "off") // the agent's
		goPlugin(t)
	})

	t.Run("helper.conf cmd", func(t *testing.T) {
		dir := t.TempDir()
		srv := hostileWAPI(t)
		marker := fmt.Sprintf("faults-cmd-%d", time.Now().UnixNano())
		t.Setenv("SVIDAGENT_TEST_MARKER", marker) // the agent's, so its command's
		writeFile(t, filepath.Join(dir, "helper.conf"), fmt.Sprintf(`
agent_address = %q
cmd = "/bin/sh"
cmd_args = "-c \"trap '' TERM; setsid sleep 1000 & exec sleep 1000\""
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
daemon_mode = true
`, srv.Addr()))
		p := startAgent(t, dir, "-config", "helper.conf")
		agent := p.cmd.Process.Pid
		t.Cleanup(func() { killAll(markedProcs(marker, os.Getpid())) })
		// The command (sh, exec'd into sleep) and its setsid sleep; no
		// event says when the command's own child has started.
		var before []int
		testkit.WaitFor(t, 60*time.Second, "the command and its setsid child", func() bool {
			before = markedProcs(marker, os.Getpid())
			sleeps := 0
			for _, pid := range before {
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) == "sleep\n" {
					sleeps++
				}
			}
			return sleeps == 2
		})
		killAgent(t, p)
		var rest []int
		for _, pid := range before {
			if pid != agent {
				rest = append(rest, pid)
			}
		}
		// SIGTERM is ignored: the reaper's SIGKILL comes 5 s later.
		if left := survivors(t, rest, 20*time.Second); len(left) > 0 {
			t.Fatalf("processes survived the SIGKILLed agent: %v of %v", left, rest)
		}
		if left := markedProcs(marker, os.Getpid()); len(left) > 0 {
			t.Fatalf("marked processes survived the SIGKILLed agent: %v", left)
		}
		t.Logf("%d processes under the agent gone after SIGKILL: %v", len(rest), rest)
	})
}

// TestPluginStderrFlood runs a go-plugin plugin that writes 1 MiB lines of
// terminal escapes to its stderr without end, beside a healthy one, and
// measures the agent's log over a window: the plugin's share is bounded by
// the byte budget (the burst plus the rate over the window, with the JSON
// overhead), its lines are cut and carry no raw control byte, the "dropped"
// summary comes at most once a second, and the agent stays live and
// delivers to the healthy plugin.
func TestPluginStderrFlood(t *testing.T) {
	const (
		window    = 3 * time.Second
		rate      = 64 << 10 // subproc.OutputBytesPerSecond
		burst     = 4 * rate
		maxLine   = 8 << 10 // subproc.MaxOutputLine
		overhead  = 2       // JSON framing and the escaping of backslashes, generously
		maxLogged = overhead * (burst + rate*int(window/time.Second))
	)
	dir := t.TempDir()
	bin, sum := buildHostile(t, dir, "")
	srv := hostileWAPI(t)
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "agent.hcl"), besideCalm(bin, sum, "flood", "")+
		nativeConfig(srv.Addr(), filepath.Join(dir, "out"), "flat", port, "  notifier \"flood\" {}\n  notifier \"calm\" {}"))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	fromPlugin := func(r logRecord) bool { return field(r, "plugin") == "flood" && field(r, "component") == "plugin" }
	first := p.waitLog(t, 0, 60*time.Second, "the flood's first line", fromPlugin)
	p.waitLog(t, 0, 60*time.Second, "the healthy plugin's notification", func(r logRecord) bool {
		return r.Msg == "notified" && field(r, "plugin") == "calm"
	})
	time.Sleep(window) // the measurement window, not a synchronisation
	end := p.numRecords()

	var logged, lines, summaries, longest int
	for i := first; i < end; i++ {
		r := p.record(i)
		if !fromPlugin(r) {
			continue
		}
		logged += len(r.raw) + 1
		if r.Msg == "plugin output dropped by the rate limit" {
			summaries++
			continue
		}
		lines++
		longest = max(longest, len(r.Msg))
		if strings.ContainsAny(r.Msg, "\x1b\x07") {
			t.Fatalf("a logged line carries raw control bytes: %q", r.Msg[:64])
		}
	}
	t.Logf("flood over %v: %d bytes of agent log (bound %d), %d lines (longest message %d bytes), %d drop summaries", window, logged, maxLogged, lines, longest, summaries)
	if logged > maxLogged {
		t.Errorf("the flooding plugin put %d bytes in the agent's log in %v, want at most %d", logged, window, maxLogged)
	}
	if longest > maxLine+100 {
		t.Errorf("a logged line's message is %d bytes, want at most %d and the cut marker", longest, maxLine)
	}
	if summaries > int(window/time.Second)+2 {
		t.Errorf("%d drop summaries in %v, want at most one a second", summaries, window)
	}
	if code, _ := (health{fmt.Sprintf("http://127.0.0.1:%d", port)}).live(); code != 200 {
		t.Errorf("/live = %d under the flood, want 200", code)
	}
}

// TestPluginMisbehavesAtStart adds, one reload at a time, a go-plugin
// plugin that exits before the handshake, hangs before it, prints garbage
// instead of it, or crashes right after it, to a running agent with a
// healthy plugin. Each reload fails with an error that names the plugin and
// says what happened, within the plugin's start_timeout; the agent stays
// live, no process of the bad plugin is left, and the healthy plugin is
// still notified of the next rotation.
func TestPluginMisbehavesAtStart(t *testing.T) {
	dir := t.TempDir()
	good, goodSum := buildHostile(t, dir, "")
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	srv := fakeworkloadapi.New(t)
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, spiffeid.RequireFromPath(td, "/start"))}, bundles)
	port := freePort(t)
	calm := fmt.Sprintf(`plugin "calm" {
  command = %q
  sha256  = %q
  config {}
}
`, good, goodSum)
	config := func(bad string) string {
		return "state_dir = \"state\"\n\n" + calm + bad +
			nativeConfig(srv.Addr(), filepath.Join(dir, "out"), "flat", port, "  notifier \"calm\" {}\n"+refIf(bad))
	}
	writeFile(t, filepath.Join(dir, "agent.hcl"), config(""))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	calmNotified := func(r logRecord) bool { return r.Msg == "notified" && field(r, "plugin") == "calm" }
	p.waitLog(t, 0, 60*time.Second, "the healthy plugin's first notification", calmNotified)

	for _, tc := range []struct {
		start string
		want  []string
	}{
		{start: "exit", want: []string{"did not complete the go-plugin handshake", "ended by itself (exit status 3)"}},
		{start: "hang", want: []string{"no go-plugin handshake within start_timeout 2s"}},
		{start: "garbage", want: []string{"Unrecognized remote plugin message: hello from a plugin", "did not complete the go-plugin handshake"}},
		{start: "crash", want: []string{"exited during /svidagent.plugin.v1.Plugin/Validate"}},
	} {
		t.Run(tc.start, func(t *testing.T) {
			bin, sum := buildHostile(t, dir, tc.start)
			from := p.numRecords()
			name := "bad-" + tc.start // the file watcher and SIGHUP may both reload
			writeFile(t, filepath.Join(dir, "agent.hcl"), config(fmt.Sprintf(`plugin %q {
  command       = %q
  sha256        = %q
  start_timeout = "2s"
  config {}
}
`, name, bin, sum)))
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			i := p.waitLog(t, from, 30*time.Second, "the failed reload", func(r logRecord) bool {
				return r.Msg == "reloading the configuration failed" && strings.Contains(r.Error, `plugin "`+name+`"`)
			})
			msg := p.record(i).Error
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("reload error %q does not say %q", msg, w)
				}
			}
			t.Logf("%s: %s", tc.start, msg)
			if code, _ := (health{fmt.Sprintf("http://127.0.0.1:%d", port)}).live(); code != 200 {
				t.Fatalf("/live = %d after the failed reload, want 200", code)
			}
			pinned := filepath.Join(dir, "state", "plugins", sum)
			testkit.WaitFor(t, 10*time.Second, "no process of the bad plugin", func() bool {
				for _, q := range pluginProcs(filepath.Join(dir, "state", "plugins")) {
					if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", q.pid)); exe == pinned {
						return false
					}
				}
				return true
			})
		})
	}
	writeFile(t, filepath.Join(dir, "agent.hcl"), config(""))
	from := p.numRecords()
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, spiffeid.RequireFromPath(td, "/start"))}, bundles)
	p.waitLog(t, from, 30*time.Second, "the healthy plugin notified after the failed reloads", calmNotified)
}

// refIf is the notifier reference of the plugin block bad, if any.
func refIf(bad string) string {
	name, ok := strings.CutPrefix(bad, "plugin ")
	if !ok {
		return ""
	}
	return "  notifier " + strings.Fields(name)[0] + " {}\n"
}

// TestPluginMemoryLimit: a command plugin that allocates without end,
// under limits { memory = "128MiB" }, dies of its limit at each rotation
// instead of taking the machine's memory; the agent logs the failure,
// stays live, restarts the plugin for the next rotation, and a healthy
// plugin of the same rotations is notified every time. (128 MiB, not less:
// the Go runtime's own reservations after the handshake vary under load.)
func TestPluginMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	bin, sum := buildHostile(t, dir, "")
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	srv := fakeworkloadapi.New(t)
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, spiffeid.RequireFromPath(td, "/hog"))}, bundles)
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "agent.hcl"), besideCalm(bin, sum, "hog", "  limits {\n    memory = \"128MiB\"\n  }\n")+
		nativeConfig(srv.Addr(), filepath.Join(dir, "out"), "flat", port, "  notifier \"hog\" {}\n  notifier \"calm\" {}"))
	p := startAgent(t, dir, "run", "-config", "agent.hcl")
	hogFailed := func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "notifying failed") && field(r, "plugin") == "hog"
	}
	calmNotified := func(r logRecord) bool { return r.Msg == "notified" && field(r, "plugin") == "calm" }
	from := 0
	for rotation := range 2 {
		if rotation > 0 {
			from = p.numRecords()
			srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, spiffeid.RequireFromPath(td, "/hog"))}, bundles)
		}
		i := p.waitLog(t, from, 60*time.Second, "the hog's failed notification", hogFailed)
		msg := p.record(i).Error
		if !strings.Contains(msg, `plugin "hog" exited during`) {
			t.Fatalf("rotation %d: the hog's failure %q does not say it exited (\"allocated 8 GiB unhindered\" means no limit held)", rotation, msg)
		}
		p.waitLog(t, from, 60*time.Second, "the healthy plugin's notification", calmNotified)
		if code, _ := (health{fmt.Sprintf("http://127.0.0.1:%d", port)}).live(); code != 200 {
			t.Fatalf("rotation %d: /live = %d, want 200", rotation, code)
		}
		t.Logf("rotation %d: %s", rotation, msg)
	}
}

// besideCalm is a config head with the hostile plugin mode (config mode =
// mode, plus extra lines in its block) and a healthy plugin "calm", both
// the executable bin pinned by sum.
func besideCalm(bin, sum, mode, extra string) string {
	return fmt.Sprintf(`state_dir = "state"

plugin %q {
  command = %q
  sha256  = %q
  config {
    mode = %q
  }
%s}

plugin "calm" {
  command = %q
  sha256  = %q
  config {}
}
`, mode, bin, sum, mode, extra, bin, sum)
}
