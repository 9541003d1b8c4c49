package faults_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
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
)

// pluginRole is what a plugin of TestMisbehavingPlugins does on Notify.
type pluginRole int

const (
	// healthy succeeds on every rotation and logs its serial.
	healthy pluginRole = iota
	// broken fails on every rotation: its circuit breaker opens.
	broken
	// flaky fails on the "bad" rotations only and succeeds on the others,
	// which resets its breaker: it goes through a failure and a recovery
	// (a new process, a fresh WASM instance) every two rotations, for as
	// long as the test runs. The leak checks count on these cycles.
	flaky
)

// pluginSpec is one plugin block of faults/testdata/misbehave.
type pluginSpec struct {
	name    string
	wasm    bool   // the WASM module; else the go-plugin executable
	mode    string // the plugin's config mode
	timeout string // limits.timeout
	memory  string // limits.memory (WASM only)
	role    pluginRole
	wantErr string // in the error of each failed call before the breaker opens
}

// badSuffix ends the SPIFFE ID of the "bad" rotations, on which the flaky
// plugins misbehave.
const badSuffix = "/bad"

var misbehaving = []pluginSpec{
	{name: "ok-cmd", role: healthy},
	{name: "ok-wasm", wasm: true, role: healthy},
	{name: "crash", mode: "crash", role: broken, wantErr: "exited"},
	{name: "hang-cmd", mode: "hang", timeout: "1s", role: broken, wantErr: "DeadlineExceeded"},
	{name: "hang-wasm", wasm: true, mode: "hang", timeout: "1s", role: broken, wantErr: "deadline 1s exceeded; the instance was discarded"},
	{name: "oom", wasm: true, mode: "oom", memory: "16MiB", role: broken, wantErr: "out of memory (limit 16 MiB); the instance was discarded"},
	{name: "flaky-crash", mode: "crash", role: flaky, wantErr: "exited during"},
	// Not shorter: under load, a good call of a go-plugin took over 200 ms,
	// and a fresh WASM instance's _initialize (the Go runtime's start,
	// ~0.1 s, 0.5 s seen under load) runs within the call's deadline.
	{name: "flaky-hang-cmd", mode: "hang", timeout: "1s", role: flaky, wantErr: "DeadlineExceeded"},
	{name: "flaky-hang-wasm", wasm: true, mode: "hang", timeout: "1s", role: flaky, wantErr: "deadline 1s exceeded; the instance was discarded"},
	{name: "flaky-oom", wasm: true, mode: "oom", memory: "16MiB", role: flaky, wantErr: "out of memory (limit 16 MiB); the instance was discarded"},
}

// fails reports whether s fails the notification of a rotation.
func (s pluginSpec) fails(bad bool) bool { return s.role == broken || s.role == flaky && bad }

func (s pluginSpec) runtime() string {
	if s.wasm {
		return "wasm"
	}
	return "command"
}

// hcl is s's plugin block and its reference in the svid block.
func (s pluginSpec) hcl(bin, sum string) (block, ref string) {
	var b strings.Builder
	kind := "command"
	if s.wasm {
		kind = "wasm"
	}
	fmt.Fprintf(&b, "plugin %q {\n  %s = %q\n  sha256 = %q\n  config {\n    mode = %q\n", s.name, kind, bin, sum, s.mode)
	if s.role == flaky {
		fmt.Fprintf(&b, "    only = %q\n", badSuffix)
	}
	b.WriteString("  }\n")
	if s.timeout != "" || s.memory != "" {
		b.WriteString("  limits {\n")
		if s.timeout != "" {
			fmt.Fprintf(&b, "    timeout = %q\n", s.timeout)
		}
		if s.memory != "" {
			fmt.Fprintf(&b, "    memory = %q\n", s.memory)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	// No retry between rotations: each notifier is called once per
	// rotation, which the breaker assertions count on.
	return b.String(), fmt.Sprintf("  notifier %q {\n    retry_backoff = \"1h\"\n  }\n", s.name)
}

// buildMisbehave builds faults/testdata/misbehave as a go-plugin
// executable and as a WASM module into dir, and returns their paths and
// sha256 pins.
func buildMisbehave(t *testing.T, dir string) (cmd, cmdSum, wasm, wasmSum string) {
	t.Helper()
	cmd, wasm = filepath.Join(dir, "misbehave"), filepath.Join(dir, "misbehave.wasm")
	for _, b := range []struct {
		out  string
		args []string
		env  []string
	}{
		{cmd, nil, []string{"CGO_ENABLED=0"}},
		{wasm, []string{"-buildmode=c-shared"}, []string{"GOOS=wasip1", "GOARCH=wasm"}},
	} {
		c := exec.Command("go", append(append([]string{"build"}, b.args...), "-o", b.out, "./testdata/misbehave")...)
		c.Env = append(os.Environ(), b.env...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.out, err, out)
		}
	}
	sum := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	return cmd, sum(cmd), wasm, sum(wasm)
}

// field returns the string attribute key of a JSON log record.
func field(r logRecord, key string) string {
	var m map[string]any
	if json.Unmarshal([]byte(r.raw), &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

// notifiedBy matches the log line the misbehave plugin name writes through
// the host when it succeeds for the X509-SVID with serial.
func notifiedBy(name, serial string) func(logRecord) bool {
	return func(r logRecord) bool {
		return r.Msg == "notified" && r.Serial == serial && field(r, "plugin") == name
	}
}

// notifyFailedMsg is what the agent logs when a notifier fails.
const notifyFailedMsg = "notifying failed; it is tried again with backoff until it succeeds or a newer rotation supersedes it"

// notifyFailed matches the agent's record of a failed notification of
// the notifier name.
func notifyFailed(name string) func(logRecord) bool {
	return func(r logRecord) bool { return r.Msg == notifyFailedMsg && field(r, "plugin") == name }
}

// agentLines returns the agent's log lines, less those re-emitted from the
// plugins' standard error (each out-of-memory trap logs a Go traceback).
func agentLines(p *agentProc) string {
	var b strings.Builder
	for _, l := range strings.Split(p.log(), "\n") {
		if !strings.Contains(l, `"stream":"stderr"`) {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// noKeepAlive is the test's HTTP client: no idle connection holds a
// goroutine or a descriptor in the agent between two measurements.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// pluginState is the part of /status the test reads.
type pluginState struct {
	Name      string `json:"name"`
	Runtime   string `json:"runtime"`
	State     string `json:"state"`
	Restarts  uint64 `json:"restarts"`
	LastError string `json:"last_error"`
}

// agentStatus is the part of /status the test reads.
type agentStatus struct {
	Live    bool          `json:"live"`
	Ready   bool          `json:"ready"`
	Plugins []pluginState `json:"plugins"`
}

func getStatus(t testing.TB, base string) agentStatus {
	t.Helper()
	resp, err := noKeepAlive.Get(base + "/status")
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	var st agentStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decoding /status: %v", err)
	}
	return st
}

func (st agentStatus) plugin(name string) pluginState {
	for _, p := range st.Plugins {
		if p.Name == name {
			return p
		}
	}
	return pluginState{Name: name, State: "missing from /status"}
}

func getCode(t testing.TB, url string) int {
	t.Helper()
	resp, err := noKeepAlive.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metrics is one scrape of /metrics: value by series ("name{labels}").
type metrics map[string]float64

func getMetrics(t testing.TB, base string) metrics {
	t.Helper()
	resp, err := noKeepAlive.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	return m
}

// get returns the sum of the series of name that carry every label pair
// ("plugin", "crash", ...).
func (m metrics) get(name string, labels ...string) float64 {
	var sum float64
next:
	for series, v := range m {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(series, fmt.Sprintf("%s=%q", labels[i], labels[i+1])) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

// usage is what the leak checks count in the agent's process.
type usage struct {
	goroutines int        // go_goroutines
	fds        int        // entries of /proc/<pid>/fd
	plugins    []procInfo // processes running the pinned plugin executable
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d plugin processes", u.goroutines, u.fds, len(u.plugins))
}

// pluginProcs returns the processes whose executable is in pinDir, where
// the agent pins the go-plugin executables it runs.
func pluginProcs(pinDir string) []procInfo {
	var out []procInfo
	for pid, p := range allProcs() {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && strings.HasPrefix(exe, pinDir+string(os.PathSeparator)) {
			out = append(out, p)
		}
	}
	return out
}

func measure(t testing.TB, base string, pid int, pinDir string) usage {
	t.Helper()
	des, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return usage{
		goroutines: int(getMetrics(t, base).get("go_goroutines")),
		fds:        len(des),
		plugins:    pluginProcs(pinDir),
	}
}

// checkChildren fails t if a plugin process is not the agent's own child
// (an orphan) or if any child of the agent is a zombie.
func checkChildren(t testing.TB, pid int, u usage) {
	t.Helper()
	for _, p := range u.plugins {
		if p.ppid != pid {
			t.Errorf("plugin process %d has parent %d, not the agent (%d): orphaned", p.pid, p.ppid, pid)
		}
	}
	for _, p := range allProcs() {
		if p.ppid == pid && p.state == 'Z' {
			t.Errorf("child %d of the agent is a zombie", p.pid)
		}
	}
}

// TestMisbehavingPlugins runs a crash loop, two hangs and two
// out-of-memory plugins in one agent, beside healthy ones, while the fake
// Workload API rotates the X509-SVID 48 times. Each rotation is pushed once
// every notifier has finished with the previous one, so that each notifier
// is called exactly once per rotation (nothing merges in its mailbox) and
// the agent's state is the same at the two measurements. Asserted:
//
//   - every rotation is delivered to the files writer and to both healthy
//     plugins (a go-plugin and a WASM one), and /ready and /live stay 200;
//   - while the hanging plugins are stuck in a call until their deadline,
//     the healthy plugins have already been notified of that rotation;
//   - each broken plugin fails each call with its own error (a process
//     exit, a deadline, an out-of-memory trap), and its circuit breaker
//     opens at the fifth failed call, not before; then calls fail fast;
//   - the flaky plugins recover after each failure (a new process, a fresh
//     WASM instance) and are restarted once per cycle;
//   - after 20 failure/recovery cycles of each flaky plugin, the agent has
//     no more goroutines, descriptors or plugin processes than after the
//     warm-up (bounded by a small constant), no zombie child and no orphan;
//   - SIGTERM: exit 0, and no plugin process survives.
func TestMisbehavingPlugins(t *testing.T) {
	dir := t.TempDir()
	cmdBin, cmdSum, wasmBin, wasmSum := buildMisbehave(t, dir)

	td := spiffeid.RequireTrustDomainFromString("example.org")
	goodID := spiffeid.RequireFromPath(td, "/plugins")
	badID := spiffeid.RequireFromPath(td, "/plugins"+badSuffix)
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	srv := fakeworkloadapi.New(t)

	var blocks, refs strings.Builder
	for _, s := range misbehaving {
		bin, sum := cmdBin, cmdSum
		if s.wasm {
			bin, sum = wasmBin, wasmSum
		}
		b, r := s.hcl(bin, sum)
		blocks.WriteString(b)
		refs.WriteString(r)
	}
	out := filepath.Join(dir, "out")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	writeFile(t, filepath.Join(dir, "agent.hcl"), "state_dir = \"state\"\n\n"+blocks.String()+
		nativeConfig(srv.Addr(), out, "flat", port, refs.String()))
	pinDir := filepath.Join(dir, "state", "plugins")

	const (
		opensAt   = 4  // the rotation of the fifth call (rotation 0 is the first delivery)
		warmUp    = 8  // the rotation after which the baseline is measured
		rotations = 48 // the last rotation; 20 bad ones after the warm-up
		// Slack of the leak checks: go_goroutines and the fd count move by
		// a few with the scrape's own connection.
		goroutineSlack = 5
		fdSlack        = 2
	)
	var (
		p         *agentProc
		serial    string
		openedAt  time.Time
		maxNotify time.Duration // push to both healthy plugins notified, after the first delivery
		firstIn   time.Duration // agent started to the first delivery (plugins load first)
	)
	// rotate pushes rotation r (bad on odd r) and waits until the files
	// writer and every notifier are done with it.
	rotate := func(r int) {
		t.Helper()
		bad := r%2 == 1
		id := goodID
		if bad {
			id = badID
		}
		svid := ca.X509SVID(t, id)
		serial = serialHex(svid.Certificates[0])
		from := 0
		if p != nil {
			from = p.numRecords()
		}
		pushed := time.Now()
		srv.SetX509([]*x509svid.SVID{svid}, bundles)
		if p == nil {
			p = startAgent(t, dir, "run", "-config", "agent.hcl")
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("svidagent log without the plugins' stderr (the out-of-memory tracebacks):\n%s", agentLines(p))
				}
			})
		}
		timeout := 30 * time.Second
		if r == 0 {
			timeout = 5 * time.Minute // plugins load first: the WASM module compiles cold
		}
		delivery := p.waitLog(t, from, timeout, fmt.Sprintf("rotation %d delivered", r), delivered(serial))
		if r == 0 {
			firstIn = time.Since(pushed)
		}
		idx := map[string]int{}
		for _, s := range misbehaving {
			if s.fails(bad) {
				i := p.waitLog(t, from, 30*time.Second, fmt.Sprintf("%s failing rotation %d", s.name, r), notifyFailed(s.name))
				idx[s.name] = i
				msg := p.record(i).Error
				switch {
				case r <= opensAt || s.role == flaky:
					if !strings.Contains(msg, s.wantErr) {
						t.Errorf("rotation %d: %s failed with %q, want %q in it", r, s.name, msg, s.wantErr)
					}
				case r <= warmUp && !strings.Contains(msg, "circuit breaker open"):
					// Within seconds of the breaker opening (its cooldown
					// is 30 s): every call fails fast.
					t.Errorf("rotation %d: %s failed with %q, want the breaker to fail it fast", r, s.name, msg)
				}
				continue
			}
			idx[s.name] = p.waitLog(t, from, 30*time.Second, fmt.Sprintf("%s notified of rotation %d", s.name, r), notifiedBy(s.name, serial))
			if s.role == healthy && r > 0 {
				maxNotify = max(maxNotify, time.Since(pushed))
			}
		}
		// The hanging plugins are stuck until their deadline (1 s): the
		// healthy ones and the files writer were not held up by them. (At
		// rotation 0 the plugins start in the background, each in its own
		// time: a healthy WASM module still compiling is notified once
		// ready, which may be after a hung plugin that started at once
		// failed.)
		if r <= opensAt {
			for _, hung := range []string{"hang-cmd", "hang-wasm"} {
				for _, other := range []string{"ok-cmd", "ok-wasm"} {
					if r > 0 && idx[other] > idx[hung] {
						t.Errorf("rotation %d: %s was notified only after %s's call had failed", r, other, hung)
					}
				}
				if delivery > idx[hung] {
					t.Errorf("rotation %d: the files were delivered only after %s's call had failed", r, hung)
				}
			}
		}
		if code := getCode(t, base+"/ready"); code != 200 {
			t.Errorf("rotation %d: /ready %d, want 200", r, code)
		}
		if code := getCode(t, base+"/live"); code != 200 {
			t.Errorf("rotation %d: /live %d, want 200", r, code)
		}
		if r > opensAt {
			return
		}
		st := getStatus(t, base)
		for _, s := range misbehaving {
			ps := st.plugin(s.name)
			want := "ok"
			switch {
			case s.role == broken && r == opensAt:
				want = "breaker open"
			case s.fails(bad):
				want = "failing"
			}
			if ps.State != want {
				t.Errorf("rotation %d: /status has %s %q (%s), want %q", r, s.name, ps.State, ps.LastError, want)
			}
		}
		if r == opensAt {
			openedAt = time.Now()
		}
	}

	for r := 0; r <= warmUp; r++ {
		rotate(r)
	}
	if t.Failed() {
		t.FailNow()
	}
	pid := p.cmd.Process.Pid
	before := measure(t, base, pid, pinDir)
	checkChildren(t, pid, before)
	// The go-plugin processes up after a good rotation: all but crash,
	// whose breaker is open.
	if want := 4; len(before.plugins) != want {
		t.Errorf("after the warm-up: %d plugin processes, want %d (ok-cmd, hang-cmd, flaky-crash, flaky-hang-cmd)", len(before.plugins), want)
	}
	restartsBefore := getMetrics(t, base)

	for r := warmUp + 1; r <= rotations; r++ {
		rotate(r)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Leaks: the state is the one of the baseline (each flaky plugin has
	// just recovered, the broken ones are open), so the counts must be
	// too. The last scrape's connection may not be gone yet: poll.
	var after usage
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = measure(t, base, pid, pinDir)
		if (after.goroutines <= before.goroutines+goroutineSlack && after.fds <= before.fds+fdSlack) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkChildren(t, pid, after)
	if after.goroutines > before.goroutines+goroutineSlack {
		t.Errorf("goroutine leak: %d after the warm-up, %d after %d more rotations", before.goroutines, after.goroutines, rotations-warmUp)
	}
	if after.fds > before.fds+fdSlack {
		t.Errorf("descriptor leak: %d after the warm-up, %d after %d more rotations", before.fds, after.fds, rotations-warmUp)
	}
	if len(after.plugins) != len(before.plugins) {
		t.Errorf("%d plugin processes after the warm-up, %d after %d more rotations", len(before.plugins), len(after.plugins), rotations-warmUp)
	}

	// What an operator sees.
	st := getStatus(t, base)
	m := getMetrics(t, base)
	cycles := float64(rotations-warmUp) / 2
	for _, s := range misbehaving {
		ps := st.plugin(s.name)
		calls := m.get("svidagent_plugins_calls_total", "plugin", s.name, "method", "Notify")
		failed := m.get("svidagent_plugins_calls_total", "plugin", s.name, "method", "Notify", "result", "error")
		restarts := m.get("svidagent_plugins_restarts_total", "plugin", s.name)
		grew := restarts - restartsBefore.get("svidagent_plugins_restarts_total", "plugin", s.name)
		t.Logf("%-16s %-7s %-13s restarts %3.0f (%2.0f after the warm-up), Notify calls %3.0f, failed %3.0f; %s",
			s.name, s.runtime(), ps.State, restarts, grew, calls, failed, ps.LastError)
		if ps.Runtime != s.runtime() || uint64(restarts) != ps.Restarts {
			t.Errorf("%s: /status has runtime %q and %d restarts, /metrics %.0f restarts; want runtime %q and the same count", s.name, ps.Runtime, ps.Restarts, restarts, s.runtime())
		}
		switch s.role {
		case healthy:
			if ps.State != "ok" || failed != 0 || calls != rotations+1 {
				t.Errorf("healthy %s: state %q, %.0f Notify calls of which %.0f failed; want ok, %d calls, none failed", s.name, ps.State, calls, failed, rotations+1)
			}
		case broken:
			// Open, or failing if the 30 s cooldown was over and the
			// trial call failed; never ok.
			if ps.State == "ok" {
				t.Errorf("broken %s: state ok at the end", s.name)
			}
			if s.name == "crash" && restarts < 1 {
				t.Errorf("crash: restarted %.0f times before its breaker opened, want at least once (a crash loop)", restarts)
			}
		case flaky:
			if calls != rotations+1 || failed != rotations/2 {
				t.Errorf("flaky %s: %.0f Notify calls of which %.0f failed; want %d calls, and only the %d bad rotations failed", s.name, calls, failed, rotations+1, rotations/2)
			}
			if ps.State != "ok" {
				t.Errorf("flaky %s: state %q (%s) after a good rotation, want ok: a success resets the breaker", s.name, ps.State, ps.LastError)
			}
			if s.mode != "hang" || s.wasm {
				// A new process or a fresh instance after each failure; a
				// go-plugin that hung is not restarted.
				if grew != cycles {
					t.Errorf("flaky %s: %.0f restarts in %.0f failure cycles, want one per cycle", s.name, grew, cycles)
				}
			} else if grew != 0 {
				t.Errorf("flaky %s: restarted %.0f times; a call past its deadline does not restart the process", s.name, grew)
			}
		}
	}
	if got := m.get("svidagent_svid_rotations_total", "svid", "faults"); got != rotations+1 {
		t.Errorf("svidagent_svid_rotations_total %.0f, want %d", got, rotations+1)
	}
	if leaf := checkX509Dir(t, out); serialHex(leaf) != serial {
		t.Errorf("the files hold serial %s, want the last rotation's %s", serialHex(leaf), serial)
	}

	// Shutdown: every plugin process goes with the agent.
	tree := descendants(allProcs(), pid)
	if code := p.signalAndWait(t, syscall.SIGTERM, time.Minute); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for _, q := range pluginProcs(pinDir) {
		if q.state != 'Z' {
			t.Errorf("plugin process %d (parent %d) survived the agent", q.pid, q.ppid)
		}
	}
	for _, d := range tree {
		if now, ok := readProc(d.pid); ok && now.start == d.start && now.state != 'Z' {
			t.Errorf("pid %d, a descendant of the agent, survived it", d.pid)
		}
	}
	t.Logf("FAULTS-FIGURE misbehaving plugins: first delivery %s after the start; %d rotations, each delivered to the files and both healthy plugins (push to both notified: max %s); breakers open at rotation %d, %s before the end; after the warm-up %v, after %d more rotations %v; %d descendants before SIGTERM, none after",
		firstIn.Round(100*time.Millisecond), rotations+1, maxNotify.Round(time.Millisecond), opensAt, time.Since(openedAt).Round(100*time.Millisecond), before, rotations-warmUp, after, len(tree))
}
