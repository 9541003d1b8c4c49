package subproc_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"github.com/svidagent/svidagent/internal/plugin/subproc"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/internal/wire"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

type opt func(*subproc.Config)

func open(t *testing.T, opts ...opt) (*subproc.Plugin, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	cfg := subproc.Config{
		Path:     bin.notifier,
		SHA256:   bin.sum,
		Kind:     hostapi.KindNotifier,
		Name:     "test",
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StateDir: t.TempDir(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := subproc.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	describe(t, p)
	configure(t, p, "default")
	return p, logs
}

func notify(ctx context.Context, p adapter.Conn, name string, paths ...string) error {
	return p.Invoke(ctx, adapter.MethodNotify, &notifierv1.NotifyRequest{Name: name, Paths: paths}, &notifierv1.NotifyResponse{})
}

func describe(t *testing.T, p adapter.Conn) *pluginv1.DescribeResponse {
	t.Helper()
	resp := &pluginv1.DescribeResponse{}
	if err := p.Invoke(context.Background(), adapter.MethodDescribe, &pluginv1.DescribeRequest{HostServices: []string{adapter.ServiceLogger}}, resp); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	return resp
}

func configure(t *testing.T, p adapter.Conn, greeting string) {
	t.Helper()
	req := &pluginv1.ConfigureRequest{ConfigJson: []byte(fmt.Sprintf(`{"greeting":%q}`, greeting))}
	if err := p.Invoke(context.Background(), adapter.MethodConfigure, req, &pluginv1.ConfigureResponse{}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
}

// echo returns the plugin's configured greeting and pid.
func echo(t *testing.T, p adapter.Conn) (string, int) {
	t.Helper()
	err := notify(context.Background(), p, "echo")
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("echo: got %v, want FAILED_PRECONDITION with the greeting", err)
	}
	var greeting string
	var pid int
	if _, err := fmt.Sscanf(status.Convert(err).Message(), "greeting=%s pid=%d", &greeting, &pid); err != nil {
		t.Fatalf("parsing echo %q: %v", status.Convert(err).Message(), err)
	}
	return greeting, pid
}

// waitExit waits, on a pidfd (an event, not a poll), until pid has exited.
// It returns false if pid is still running after timeout.
func waitExit(t *testing.T, pid int, timeout time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n == 1
	}
}

// processesRunning returns the pids of live processes whose executable is
// path (zombies have none).
func processesRunning(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && (exe == path || exe == path+" (deleted)") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestNotifierThroughAdapter(t *testing.T) {
	p, err := subproc.Open(context.Background(), subproc.Config{Path: bin.notifier, SHA256: bin.sum, Name: "test", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	pl, err := adapter.Open(ctx, p, adapter.Settings{Kind: hostapi.KindNotifier, Name: "test", ConfigJSON: []byte(`{"greeting":"hello"}`)})
	if err != nil {
		t.Fatalf("adapter.Open: %v", err)
	}
	if got := pl.Info(); got.Name != "test-notifier" || got.Version != "0.1.0" || got.Service != adapter.ServiceNotifier {
		t.Errorf("Info = %+v, want test-notifier 0.1.0 speaking %s", got, adapter.ServiceNotifier)
	}
	if err := pl.Notifier().Notify(ctx, &hostapi.RotationEvent{Name: "svid", Reason: hostapi.ChangedX509, Time: time.Now()}); err != nil {
		t.Errorf("Notify: %v", err)
	}
	if err := pl.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestCrashRestartsAndReplaysConfigure(t *testing.T) {
	p, logs := open(t)
	describe(t, p)
	configure(t, p, "first")
	greeting, pid1 := echo(t, p)
	if greeting != "first" || pid1 != p.Pid() {
		t.Fatalf("echo = %q pid %d, want \"first\" pid %d", greeting, pid1, p.Pid())
	}

	err := notify(context.Background(), p, "crash")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "exited during") {
		t.Fatalf("crash: got %v, want UNAVAILABLE saying the plugin exited", err)
	}
	if !waitExit(t, pid1, 5*time.Second) {
		t.Fatalf("crashed plugin pid %d still runs", pid1)
	}

	greeting, pid2 := echo(t, p)
	if pid2 == pid1 || pid2 == 0 {
		t.Errorf("after the crash the plugin runs as pid %d, want a new process (was %d)", pid2, pid1)
	}
	if greeting != "first" {
		t.Errorf("after the restart greeting = %q, want the replayed %q", greeting, "first")
	}
	// A later Configure is what the next restart replays.
	configure(t, p, "second")
	if err := notify(context.Background(), p, "crash"); status.Code(err) != codes.Unavailable {
		t.Fatalf("second crash: got %v, want UNAVAILABLE", err)
	}
	if greeting, _ := echo(t, p); greeting != "second" {
		t.Errorf("after the second restart greeting = %q, want %q", greeting, "second")
	}
	var warned bool
	for _, r := range logs.Records(t) {
		if r["component"] == "subproc" && r["level"] == "WARN" && strings.Contains(fmt.Sprint(r["msg"]), "restarting") {
			warned = true
		}
	}
	if !warned {
		t.Error("no WARN record about the restart")
	}
}

func TestHangHitsDeadline(t *testing.T) {
	p, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := notify(ctx, p, "hang")
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("hang: got %v, want DEADLINE_EXCEEDED", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the hung call took %s", d)
	}
	pid := p.Pid()
	if err := notify(context.Background(), p, "ok"); err != nil {
		t.Errorf("a call after the hung one: %v", err)
	}
	if p.Pid() != pid {
		t.Errorf("a hung call restarted the plugin (pid %d -> %d)", pid, p.Pid())
	}
}

func TestHostHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	allowed, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{u.Host}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{"hooks.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		http     *services.HTTP
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "allowed", http: allowed, wantCode: codes.OK},
		{name: "host not allowed", http: other, wantCode: codes.PermissionDenied, wantMsg: "is not allowed"},
		{name: "not granted", http: nil, wantCode: codes.PermissionDenied, wantMsg: "not granted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := open(t, func(c *subproc.Config) {
				c.Services = &services.Services{Logger: services.NewLogger(slog.New(slog.DiscardHandler), c.Name, 0), HTTP: tt.http}
			})
			describe(t, p) // carries the broker id of the host services
			err := notify(context.Background(), p, "http", srv.URL)
			if status.Code(err) != tt.wantCode || !strings.Contains(fmt.Sprint(err), tt.wantMsg) {
				t.Errorf("got %v, want %s containing %q", err, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestHostHTTPAfterRestart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	web, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{u.Host}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := open(t, func(c *subproc.Config) {
		c.Services = &services.Services{Logger: services.NewLogger(slog.New(slog.DiscardHandler), c.Name, 0), HTTP: web}
	})
	describe(t, p)
	if err := notify(context.Background(), p, "crash"); status.Code(err) != codes.Unavailable {
		t.Fatalf("crash: %v", err)
	}
	// The replayed Describe carries the new process's broker id.
	if err := notify(context.Background(), p, "http", srv.URL); err != nil {
		t.Errorf("host HTTP after a restart: %v", err)
	}
}

func TestChecksum(t *testing.T) {
	wrong := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		cfg  func(*subproc.Config)
		want []string
	}{
		{name: "mismatch", cfg: func(c *subproc.Config) { c.SHA256 = wrong },
			want: []string{bin.sum, wrong, "svidagent plugin hash"}},
		{name: "missing", cfg: func(c *subproc.Config) { c.SHA256 = "" },
			want: []string{"sha256 is required", "svidagent plugin hash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			cfg := subproc.Config{Path: bin.notifier, SHA256: bin.sum, Name: "test", StateDir: state}
			tt.cfg(&cfg)
			p, err := subproc.Open(context.Background(), cfg)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(filepath.Join(state, "plugins")); len(entries) != 0 {
				t.Errorf("a refused plugin was pinned: %v", entries)
			}
		})
	}
}

func TestInsecureSkipChecksumWarnsAtEveryStart(t *testing.T) {
	p, logs := open(t, func(c *subproc.Config) { c.SHA256, c.InsecureSkipChecksum = "", true })
	if err := notify(context.Background(), p, "crash"); status.Code(err) != codes.Unavailable {
		t.Fatalf("crash: %v", err)
	}
	if err := notify(context.Background(), p, "ok"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	var warnings int
	for _, r := range logs.Records(t) {
		if r["level"] == "WARN" && strings.Contains(fmt.Sprint(r["msg"]), "without verifying its checksum") {
			warnings++
		}
	}
	if warnings != 2 {
		t.Errorf("%d checksum warnings, want 2 (one per start)", warnings)
	}
}

func TestPinnedCopy(t *testing.T) {
	state := t.TempDir()
	p, _ := open(t, func(c *subproc.Config) { c.StateDir = state })
	pinned := filepath.Join(state, "plugins", bin.sum)
	fi, err := os.Stat(pinned)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("pinned copy mode %v, want 0700", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(pinned))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("plugin dir mode %v, want 0700", di.Mode().Perm())
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if exe != pinned {
		t.Errorf("the plugin runs %s, want the pinned copy %s", exe, pinned)
	}
}

func TestBreakerAfterRepeatedStartFailures(t *testing.T) {
	state := t.TempDir()
	// The original is a copy the test can replace.
	orig := filepath.Join(t.TempDir(), "notifier")
	b, err := os.ReadFile(bin.notifier)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orig, b, 0o700); err != nil {
		t.Fatal(err)
	}
	p, _ := open(t, func(c *subproc.Config) {
		c.Path, c.StateDir = orig, state
		c.BreakerThreshold, c.BreakerCooldown = 3, time.Hour
		c.RestartBackoff = time.Nanosecond
	})
	// Someone swaps the binary and removes the pinned copy; then the
	// plugin crashes: restarts must refuse the new bytes.
	if err := os.WriteFile(orig, []byte("#!/bin/sh\necho evil\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(state, "plugins", bin.sum)); err != nil {
		t.Fatal(err)
	}
	if err := notify(context.Background(), p, "crash"); status.Code(err) != codes.Unavailable {
		t.Fatalf("crash: %v", err)
	}
	// failure 1 was the crash; 2 and 3 are refused restarts.
	for i := 2; i <= 3; i++ {
		err := notify(context.Background(), p, "ok")
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), bin.sum) {
			t.Fatalf("call %d: got %v, want UNAVAILABLE from a refused restart naming the pinned hash", i, err)
		}
	}
	err = notify(context.Background(), p, "ok")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker open") || !strings.Contains(err.Error(), "3 times in a row") {
		t.Fatalf("after 3 failures: got %v, want the open circuit breaker", err)
	}
}

func TestLogsReemitted(t *testing.T) {
	p, logs := open(t)
	describe(t, p)
	if err := notify(context.Background(), p, "log"); err != nil {
		t.Fatal(err)
	}
	p.Close() // flushes stderr
	want := map[string]string{"through the host": "WARN", "through stderr": "ERROR"}
	for _, r := range logs.Records(t) {
		msg := fmt.Sprint(r["msg"])
		lv, ok := want[msg]
		if !ok {
			continue
		}
		if r["level"] != lv || r["component"] != "plugin" || r["plugin"] != "test" || r["via"] == nil {
			t.Errorf("record %v: want level %s, component=plugin, plugin=test and attribute via", r, lv)
		}
		delete(want, msg)
	}
	if len(want) > 0 {
		t.Errorf("records not re-emitted: %v", want)
	}
}

func TestNotifierNeverReceivesKeys(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	svid := ca.X509SVID(t, spiffeid.RequireFromString("spiffe://example.org/workload"))
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	ev := &hostapi.RotationEvent{Name: "dump", Reason: hostapi.ChangedX509, Time: time.Now(),
		X509: []hostapi.X509Identity{{SPIFFEID: svid.ID.String(), Serial: svid.Certificates[0].SerialNumber.Text(16),
			NotBefore: svid.Certificates[0].NotBefore, NotAfter: svid.Certificates[0].NotAfter}},
		Paths: []string{"/out/svid.pem", "/out/svid_key.pem"}}
	req := wire.RotationEventToProto(ev)
	onWire, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onWire, keyDER) || bytes.Contains(onWire, svid.Certificates[0].Raw) {
		t.Fatal("the NotifyRequest carries key or certificate bytes")
	}
	p, _ := open(t)
	err = p.Invoke(context.Background(), adapter.MethodNotify, req, &notifierv1.NotifyResponse{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("dump: %v", err)
	}
	var got hostapi.RotationEvent
	if err := json.Unmarshal([]byte(status.Convert(err).Message()), &got); err != nil {
		t.Fatalf("decoding what the plugin received: %v", err)
	}
	if len(got.X509) != 1 || got.X509[0].SPIFFEID != svid.ID.String() || got.X509[0].Serial != ev.X509[0].Serial {
		t.Errorf("the plugin received %+v, want the identity and serial", got.X509)
	}
	received := []byte(status.Convert(err).Message())
	for _, secret := range [][]byte{keyDER, []byte("PRIVATE KEY")} {
		if bytes.Contains(received, secret) {
			t.Errorf("the plugin received key material")
		}
	}
}

// TestAgentKilledTakesPluginDown SIGKILLs a host that runs a plugin which
// started a grandchild in a new session that ignores SIGTERM: the plugin
// and the grandchild both die (the plugin's pid namespace dies with it).
// Run as root, it also runs the host as an unprivileged user, whose plugin
// gets a user namespace with its pid namespace.
func TestAgentKilledTakesPluginDown(t *testing.T) {
	t.Run("agent's user", func(t *testing.T) { agentKilled(t, bin.host, bin.notifier, t.TempDir(), nil, nil) })
	// Where the kernel refuses the namespaces, the reaper stands in.
	t.Run("no pid namespace", func(t *testing.T) {
		agentKilled(t, bin.host, bin.notifier, t.TempDir(), nil, []string{subproc.EnvPIDNamespace + "=off"})
	})
	t.Run("unprivileged", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the agent's user is unprivileged already: see the other subtest")
		}
		const nobody = 65534
		dir, err := os.MkdirTemp("", "subproc-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, src := range []string{bin.host, bin.notifier} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, filepath.Base(src))
			if err := os.WriteFile(dst, b, 0o755); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, dst)
		}
		state := filepath.Join(dir, "state")
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(state, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		agentKilled(t, paths[0], paths[1], state, &syscall.Credential{Uid: nobody, Gid: nobody}, nil)
	})
}

func agentKilled(t *testing.T, host, plugin, state string, cred *syscall.Credential, env []string) {
	marker := fmt.Sprintf("subproc-killed-host-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command(host, "-plugin", plugin, "-sha256", bin.sum, "-state", state, "-spawn", marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	t.Cleanup(func() { killMarked(marker) })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the host's pid line: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "pid %d", &pid); err != nil || pid <= 0 {
		t.Fatalf("host said %q", line)
	}
	pinned := filepath.Join(state, "plugins", bin.sum)
	if got := processesRunning(t, pinned); len(got) != 1 || got[0] != pid {
		t.Fatalf("processes running %s: %v, want [%d]", pinned, got, pid)
	}
	// The grandchild is a sh exec'ing sleep: while it execs, its environ
	// cannot be read, so it is looked for until it can.
	var grandchildren []int
	for deadline := time.Now().Add(10 * time.Second); len(grandchildren) == 0; grandchildren = marked(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the plugin's grandchild is not running")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !waitExit(t, pid, 10*time.Second) {
		t.Fatalf("plugin pid %d survived its SIGKILLed host", pid)
	}
	if got := processesRunning(t, pinned); len(got) != 0 {
		t.Errorf("plugin processes survived the host: %v", got)
	}
	// The namespace's processes are killed before its first process is
	// reported dead; the reaper's get SIGTERM, and SIGKILL after its grace
	// (they ignore SIGTERM). Their pidfds say when they are gone.
	for _, g := range grandchildren {
		if !waitExit(t, g, 10*time.Second) {
			t.Errorf("the plugin's grandchild %d survived the host", g)
		}
	}
	// Any other marked process (one that was exec'ing when they were
	// listed) was signalled with them: it gets as long to exit.
	for _, g := range marked(marker) {
		if !waitExit(t, g, 10*time.Second) {
			t.Errorf("the plugin's grandchild %d survived the host", g)
		}
	}
}

// marked returns the live (not zombie) processes with
// SVIDAGENT_TEST_MARKER=marker in their environment.
func marked(marker string) []int {
	want := []byte("SVIDAGENT_TEST_MARKER=" + marker + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// killMarked cleans up after a failed test.
func killMarked(marker string) {
	for _, pid := range marked(marker) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestCloseKillsAndIsIdempotent(t *testing.T) {
	p, _ := open(t)
	pid := p.Pid()
	for i := range 2 {
		if err := p.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if !waitExit(t, pid, 5*time.Second) {
		t.Errorf("pid %d runs after Close", pid)
	}
	if err := notify(context.Background(), p, "ok"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Invoke after Close: got %v, want FAILED_PRECONDITION", err)
	}
}

func TestInspect(t *testing.T) {
	info, err := subproc.Inspect(context.Background(), bin.notifier)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "test-notifier" || info.Version != "0.1.0" || info.SHA256 != bin.sum ||
		len(info.Services) != 2 || info.Services[1] != adapter.ServiceNotifier {
		t.Errorf("Inspect = %+v", info)
	}
}

// TestHammerInvoke runs calls concurrently with crashes: every call either
// succeeds or fails with UNAVAILABLE, and the plugin serves afterwards.
func TestHammerInvoke(t *testing.T) {
	p, _ := open(t, func(c *subproc.Config) { c.BreakerThreshold = 1000; c.RestartBackoff = time.Nanosecond })
	describe(t, p)
	configure(t, p, "hammer")
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				name := "ok"
				if g == 0 && i%10 == 9 {
					name = "crash"
				}
				err := notify(context.Background(), p, name)
				if err != nil && status.Code(err) != codes.Unavailable {
					errs <- err
				}
				_ = p.Pid()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if g, _ := echo(t, p); g != "hammer" {
		t.Errorf("after the hammer greeting = %q", g)
	}
}

func BenchmarkInvokeNotify(b *testing.B) {
	cfg := subproc.Config{Path: bin.notifier, SHA256: bin.sum, Name: "bench", StateDir: b.TempDir()}
	p, err := subproc.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.Invoke(context.Background(), adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte("{}")}, &pluginv1.ConfigureResponse{}); err != nil {
		b.Fatal(err)
	}
	// A 4 KiB payload: paths totalling 4096 bytes.
	req := &notifierv1.NotifyRequest{Name: "ok", Reason: 1}
	for range 32 {
		req.Paths = append(req.Paths, "/"+strings.Repeat("p", 125))
	}
	if n := proto.Size(req); n < 4096 {
		b.Fatalf("payload %d bytes", n)
	}
	// cpu-µs/op is the CPU time of both processes per call: less sensitive
	// to other load on the machine than the wall time.
	pid := p.Pid()
	host0, ok0 := cpuTime(os.Getpid())
	plugin0, ok1 := cpuTime(pid)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	host1, ok2 := cpuTime(os.Getpid())
	plugin1, ok3 := cpuTime(pid)
	if ok0 && ok1 && ok2 && ok3 && p.Pid() == pid {
		b.ReportMetric(float64(host1-host0+plugin1-plugin0)/float64(b.N)/1e3, "cpu-µs/op")
	}
}

func BenchmarkStart(b *testing.B) {
	cfg := subproc.Config{Path: bin.notifier, SHA256: bin.sum, Name: "bench", StateDir: b.TempDir()}
	for b.Loop() {
		p, err := subproc.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}

// TestMemoryLimitKillsHogAndRestarts: a plugin under a memory limit that
// allocates without bound dies of it (the Go runtime's out of memory), the
// call fails with UNAVAILABLE, the host goes on, and the next call
// restarts the plugin, again under the limit.
func TestMemoryLimitKillsHogAndRestarts(t *testing.T) {
	p, logs := open(t, func(c *subproc.Config) { c.MemoryBytes = 64 << 20 })
	_, pid1 := echo(t, p)
	err := notify(context.Background(), p, "hog")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "exited during") {
		t.Fatalf("hog: got %v, want UNAVAILABLE saying the plugin exited (a FAILED_PRECONDITION means it allocated 1 GiB unhindered)", err)
	}
	if !waitExit(t, pid1, 5*time.Second) {
		t.Fatalf("hog pid %d still runs", pid1)
	}
	var oom bool
	for _, r := range logs.Records(t) {
		if r["component"] == "plugin" && strings.Contains(fmt.Sprint(r["msg"]), "out of memory") {
			oom = true
		}
	}
	if !oom {
		t.Error("the plugin's out-of-memory error is not in the log")
	}
	_, pid2 := echo(t, p)
	if pid2 == pid1 {
		t.Fatalf("after the hog the plugin runs as pid %d, want a new process", pid2)
	}
	if err := notify(context.Background(), p, "hog"); status.Code(err) != codes.Unavailable {
		t.Fatalf("hog after the restart: got %v, want UNAVAILABLE: the limit applies to every start", err)
	}
}

// TestPluginSeesNoHostEnvironment: a plugin process gets none of the
// agent's environment variables (go-plugin's SkipHostEnv), with or without
// a pid namespace, only what go-plugin needs for its handshake.
func TestPluginSeesNoHostEnvironment(t *testing.T) {
	for _, pidns := range []string{"", "off"} {
		t.Run("pidns="+pidns, func(t *testing.T) {
			t.Setenv("SVIDAGENT_TEST_SECRET", "hunter2")
			t.Setenv(subproc.EnvPIDNamespace, pidns)
			p, _ := open(t)
			err := notify(context.Background(), p, "env")
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("env: %v", err)
			}
			names := strings.Fields(status.Convert(err).Message())
			if len(names) == 0 {
				t.Fatal("the plugin sees no environment at all: go-plugin's handshake variables are missing")
			}
			for _, k := range names {
				if !strings.HasPrefix(k, "PLUGIN_") && k != abi.GoPluginMagicCookieKey {
					t.Errorf("the plugin sees %s, which is not go-plugin's", k)
				}
			}
			t.Logf("the plugin's environment: %v", names)
		})
	}
}
