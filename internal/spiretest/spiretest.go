//go:build unix

package spiretest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const (
	// readyTimeout bounds the wait for a started process to report healthy.
	readyTimeout = 30 * time.Second
	// entryTimeout bounds the wait for the agent to see a new or deleted
	// entry. The server reloads its entry cache and the agent syncs every
	// second, so this is generous.
	entryTimeout = 30 * time.Second
	// healthPoll is the interval between healthcheck runs.
	healthPoll = 200 * time.Millisecond
	// entryPoll is the interval between Workload API or log checks.
	entryPoll = 100 * time.Millisecond
	// maxLogDump is how much of the end of each log a failed test prints.
	maxLogDump = 64 << 10
	// maxSocketPath is the longest unix socket path that every unix accepts
	// (sun_path is 104 bytes on the BSDs and macOS, 108 on Linux).
	maxSocketPath = 103
)

// Options configures Start.
type Options struct {
	// TrustDomain is the trust domain name. Default: "example.org".
	TrustDomain string
	// X509TTL is the server's default_x509_svid_ttl, the lifetime of the
	// X.509-SVIDs it issues to workloads. The agent replaces an SVID once
	// half of TTL+10s has passed (see the package doc). Default: SPIRE's,
	// 1h.
	X509TTL time.Duration
	// JWTTTL is the server's default_jwt_svid_ttl. Default: SPIRE's, 5m.
	JWTTTL time.Duration
	// BinDir is the directory that holds spire-server and spire-agent.
	// Default: $SPIRE_BIN_DIR, else the cache filled by
	// scripts/build-spire.sh.
	BinDir string
}

// Entry is a registration entry for CreateEntryWith. Zero fields take the
// server's defaults.
type Entry struct {
	// SPIFFEID is the SPIFFE ID of the SVIDs issued for the entry.
	SPIFFEID string
	// Selectors select the workloads, e.g. "unix:uid:1000". At least one is
	// required.
	Selectors []string
	// X509TTL overrides the server's X.509-SVID TTL. It is rounded down to
	// whole seconds.
	X509TTL time.Duration
	// JWTTTL overrides the server's JWT-SVID TTL. It is rounded down to
	// whole seconds.
	JWTTTL time.Duration
	// Hint disambiguates entries with the same SPIFFE ID.
	Hint string
	// FederatesWith lists trust domains (e.g. "spiffe://other.org") whose
	// bundles are served with the SVID. The federation relationship must
	// already exist on the server.
	FederatesWith []string
	// DNSNames are added to the X.509-SVID as DNS SANs.
	DNSNames []string
}

// SPIRE is a running SPIRE server and agent. Its methods may be called from
// several goroutines.
type SPIRE struct {
	trustDomain string
	dir         string
	serverBin   string
	agentBin    string
	serverConf  string
	agentConf   string
	serverSock  string
	agentSock   string
	serverLog   string
	agentLog    string
	agentID     string

	mu     sync.Mutex
	server *process // nil when stopped
	agent  *process // nil when stopped
}

// Start starts a SPIRE server and agent and returns once both are healthy.
// Cleanup registered on t stops both and removes their files; if t failed, it
// first writes their logs to t.Log. A missing SPIRE binary fails t.
func Start(t testing.TB, opts Options) *SPIRE {
	t.Helper()

	td := opts.TrustDomain
	if td == "" {
		td = "example.org"
	}
	if _, err := spiffeid.TrustDomainFromString(td); err != nil {
		t.Fatalf("spiretest: invalid trust domain %q: %v", td, err)
	}
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}

	dir, err := os.MkdirTemp(socketBaseDir(), "spiretest")
	if err != nil {
		t.Fatalf("spiretest: creating temp dir: %v", err)
	}
	s := &SPIRE{
		trustDomain: td,
		dir:         dir,
		serverBin:   filepath.Join(binDir, "spire-server"),
		agentBin:    filepath.Join(binDir, "spire-agent"),
		serverConf:  filepath.Join(dir, "server.conf"),
		agentConf:   filepath.Join(dir, "agent.conf"),
		serverSock:  filepath.Join(dir, "server.sock"),
		agentSock:   filepath.Join(dir, "agent.sock"),
		serverLog:   filepath.Join(dir, "server.log"),
		agentLog:    filepath.Join(dir, "agent.log"),
	}
	t.Cleanup(func() { s.cleanup(t) })
	if len(s.agentSock) > maxSocketPath {
		t.Fatalf("spiretest: socket path %s is longer than %d bytes; set TMPDIR to a shorter directory", s.agentSock, maxSocketPath)
	}

	port, err := freePort()
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	for _, d := range []string{"server", "agent"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatalf("spiretest: %v", err)
		}
	}
	serverConf := fmt.Sprintf(serverConfTemplate,
		port, s.serverSock, td, filepath.Join(dir, "server"),
		ttlOrDefault(opts.X509TTL, time.Hour), ttlOrDefault(opts.JWTTTL, 5*time.Minute),
		filepath.Join(dir, "server", "datastore.sqlite3"), filepath.Join(dir, "server", "keys.json"))
	if err := os.WriteFile(s.serverConf, []byte(serverConf), 0o600); err != nil {
		t.Fatalf("spiretest: writing server config: %v", err)
	}
	s.StartServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	out, err := s.serverCLI(ctx, "token", "generate", "-output", "json")
	if err != nil {
		t.Fatalf("spiretest: generating join token: %v", err)
	}
	var token struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(out, &token); err != nil || token.Value == "" {
		t.Fatalf("spiretest: parsing join token from %q: %v", out, err)
	}
	s.agentID = fmt.Sprintf("spiffe://%s/spire/agent/join_token/%s", td, token.Value)

	bundlePath := filepath.Join(dir, "bundle.pem")
	bundle, err := s.serverCLI(ctx, "bundle", "show", "-format", "pem")
	if err != nil {
		t.Fatalf("spiretest: fetching trust bundle: %v", err)
	}
	if err := os.WriteFile(bundlePath, bundle, 0o600); err != nil {
		t.Fatalf("spiretest: writing trust bundle: %v", err)
	}

	agentConf := fmt.Sprintf(agentConfTemplate,
		filepath.Join(dir, "agent"), port, s.agentSock, bundlePath, td, token.Value,
		filepath.Join(dir, "agent"))
	if err := os.WriteFile(s.agentConf, []byte(agentConf), 0o600); err != nil {
		t.Fatalf("spiretest: writing agent config: %v", err)
	}
	s.StartAgent(t)
	return s
}

// SocketPath returns the path of the agent's Workload API socket.
func (s *SPIRE) SocketPath() string { return s.agentSock }

// SocketAddr returns the agent's Workload API address in the form that
// workloadapi.WithAddr and SPIFFE_ENDPOINT_SOCKET take: "unix:///path".
func (s *SPIRE) SocketAddr() string { return "unix://" + s.agentSock }

// TrustDomain returns the trust domain name, e.g. "example.org".
func (s *SPIRE) TrustDomain() string { return s.trustDomain }

// AgentID returns the agent's SPIFFE ID, the parent of every entry that
// CreateEntry makes.
func (s *SPIRE) AgentID() string { return s.agentID }

// UIDSelector returns the unix workload selector of the calling process's
// user, "unix:uid:<uid>".
func UIDSelector() string { return "unix:uid:" + strconv.Itoa(os.Getuid()) }

// CreateEntry registers spiffeID for workloads that match selectors, with the
// agent as parent, and returns the entry ID once the agent has it (see
// CreateEntryWith).
func (s *SPIRE) CreateEntry(t testing.TB, spiffeID string, selectors ...string) string {
	t.Helper()
	return s.CreateEntryWith(t, Entry{SPIFFEID: spiffeID, Selectors: selectors})
}

// CreateEntryWith registers e with the agent as parent and returns the entry
// ID once the agent has it. If e's selectors all match the calling process
// (unix uid, gid, user or group), that is when the agent's Workload API
// serves an X.509-SVID for e.SPIFFEID to it; otherwise it is when the agent
// logs that it received the entry.
func (s *SPIRE) CreateEntryWith(t testing.TB, e Entry) string {
	t.Helper()
	if len(e.Selectors) == 0 {
		t.Fatalf("spiretest: entry %s has no selectors", e.SPIFFEID)
	}
	args := []string{"entry", "create", "-output", "json", "-parentID", s.agentID, "-spiffeID", e.SPIFFEID}
	for _, sel := range e.Selectors {
		args = append(args, "-selector", sel)
	}
	for _, td := range e.FederatesWith {
		args = append(args, "-federatesWith", td)
	}
	for _, dns := range e.DNSNames {
		args = append(args, "-dns", dns)
	}
	if e.X509TTL > 0 {
		args = append(args, "-x509SVIDTTL", strconv.Itoa(int(e.X509TTL/time.Second)))
	}
	if e.JWTTTL > 0 {
		args = append(args, "-jwtSVIDTTL", strconv.Itoa(int(e.JWTTTL/time.Second)))
	}
	if e.Hint != "" {
		args = append(args, "-hint", e.Hint)
	}

	ctx, cancel := context.WithTimeout(context.Background(), entryTimeout)
	defer cancel()
	out, err := s.serverCLI(ctx, args...)
	if err != nil {
		t.Fatalf("spiretest: creating entry %s: %v", e.SPIFFEID, err)
	}
	var resp struct {
		Results []struct {
			Status struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"status"`
			Entry struct {
				ID string `json:"id"`
			} `json:"entry"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.Results) != 1 {
		t.Fatalf("spiretest: parsing entry create output %q: %v", out, err)
	}
	r := resp.Results[0]
	if r.Status.Code != 0 || r.Entry.ID == "" {
		t.Fatalf("spiretest: creating entry %s: code %d: %s", e.SPIFFEID, r.Status.Code, r.Status.Message)
	}

	if matchesSelf(e.Selectors) {
		err = s.waitServed(ctx, e.SPIFFEID)
	} else {
		err = s.waitAgentLog(ctx, "Entry created", r.Entry.ID)
	}
	if err != nil {
		t.Fatalf("spiretest: waiting for the agent to receive entry %s (%s): %v", r.Entry.ID, e.SPIFFEID, err)
	}
	return r.Entry.ID
}

// DeleteEntry deletes the entry with the given ID and returns once the agent
// logs that it removed it.
func (s *SPIRE) DeleteEntry(t testing.TB, entryID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), entryTimeout)
	defer cancel()
	if _, err := s.serverCLI(ctx, "entry", "delete", "-entryID", entryID); err != nil {
		t.Fatalf("spiretest: deleting entry %s: %v", entryID, err)
	}
	if err := s.waitAgentLog(ctx, "Entry removed", entryID); err != nil {
		t.Fatalf("spiretest: waiting for the agent to remove entry %s: %v", entryID, err)
	}
}

// ServerCLI runs a spire-server command against this server and returns its
// stdout, e.g. ServerCLI(t, "bundle", "show", "-format", "spiffe"). The
// -socketPath flag is added after the command words.
func (s *SPIRE) ServerCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	out, err := s.serverCLI(ctx, args...)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	return out
}

// StartServer starts the server and waits until it is healthy. Start calls
// it; call it again only after StopServer. The server keeps its datastore,
// keys and port across restarts.
func (s *SPIRE) StartServer(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server != nil {
		t.Fatalf("spiretest: server already running")
	}
	p, err := startProcess("spire-server", s.serverBin, []string{"run", "-config", s.serverConf}, s.serverLog)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	s.server = p
	if err := s.waitHealthy(p, s.serverBin, s.serverSock); err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// StopServer stops the server and waits for it to exit. The agent keeps
// running and serving the SVIDs it has cached.
func (s *SPIRE) StopServer(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server == nil {
		t.Fatalf("spiretest: server not running")
	}
	err := s.server.stop()
	s.server = nil
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// StartAgent starts the agent and waits until it is healthy. Start calls it;
// call it again only after StopAgent. A restarted agent reuses its data
// directory, so it loads its stored SVID instead of attesting again (its
// join token is single-use). Its SVID lasts 1h. The agent does not serve the
// Workload API until it has synced with the server, so with the server
// stopped StartAgent fails after 30s.
func (s *SPIRE) StartAgent(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agent != nil {
		t.Fatalf("spiretest: agent already running")
	}
	p, err := startProcess("spire-agent", s.agentBin, []string{"run", "-config", s.agentConf}, s.agentLog)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	s.agent = p
	if err := s.waitHealthy(p, s.agentBin, s.agentSock); err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// StopAgent stops the agent and waits for it to exit. Its Workload API
// socket goes away with it.
func (s *SPIRE) StopAgent(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agent == nil {
		t.Fatalf("spiretest: agent not running")
	}
	err := s.agent.stop()
	s.agent = nil
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// KillAgent SIGKILLs the agent, as a crash would end it, and waits for it
// to exit. Start it again with StartAgent.
func (s *SPIRE) KillAgent(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agent == nil {
		t.Fatalf("spiretest: agent not running")
	}
	err := s.agent.kill()
	s.agent = nil
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// cleanup stops both processes, dumps their logs if t failed, and removes
// the directory.
func (s *SPIRE) cleanup(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range []**process{&s.agent, &s.server} {
		if *p == nil {
			continue
		}
		if err := (*p).stop(); err != nil {
			t.Errorf("spiretest: %v", err)
		}
		*p = nil
	}
	if t.Failed() {
		for _, path := range []string{s.serverLog, s.agentLog} {
			logTail(t, path)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Errorf("spiretest: removing %s: %v", s.dir, err)
	}
}

// serverCLI runs "spire-server args..." with -socketPath inserted after the
// leading command words.
func (s *SPIRE) serverCLI(ctx context.Context, args ...string) ([]byte, error) {
	i := 0
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		i++
	}
	full := make([]string, 0, len(args)+2)
	full = append(full, args[:i]...)
	full = append(full, "-socketPath", s.serverSock)
	full = append(full, args[i:]...)

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.serverBin, full...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("running spire-server %s: %w: %s%s",
			strings.Join(full, " "), err, stdout.Bytes(), bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// waitHealthy runs "bin healthcheck" until it succeeds, p exits, or
// readyTimeout passes.
func (s *SPIRE) waitHealthy(p *process, bin, sock string) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last []byte
	err := poll(ctx, p, healthPoll, func() bool {
		out, err := exec.CommandContext(ctx, bin, "healthcheck", "-verbose", "-socketPath", sock).CombinedOutput()
		last = out
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to become healthy: %w (last healthcheck: %s)", p.name, err, bytes.TrimSpace(last))
	}
	return nil
}

// waitServed polls the Workload API until it serves this process an
// X.509-SVID for id.
func (s *SPIRE) waitServed(ctx context.Context, id string) error {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(s.SocketAddr()))
	if err != nil {
		return fmt.Errorf("creating workload API client: %w", err)
	}
	defer client.Close()
	var lastErr error
	err = poll(ctx, s.agentProcess(), entryPoll, func() bool {
		x509Ctx, err := client.FetchX509Context(ctx)
		if err != nil {
			lastErr = err
			return false
		}
		for _, svid := range x509Ctx.SVIDs {
			if svid.ID.String() == id {
				return true
			}
		}
		lastErr = fmt.Errorf("%d SVIDs served, none for %s", len(x509Ctx.SVIDs), id)
		return false
	})
	if err != nil && lastErr != nil {
		return fmt.Errorf("%w (last fetch: %v)", err, lastErr)
	}
	return err
}

// waitAgentLog polls the agent's log until a record with message msg for
// entry entryID appears.
func (s *SPIRE) waitAgentLog(ctx context.Context, msg, entryID string) error {
	wantMsg := fmt.Sprintf("msg=%q", msg)
	wantEntry := " entry=" + entryID
	return poll(ctx, s.agentProcess(), entryPoll, func() bool {
		f, err := os.Open(s.agentLog)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, wantMsg) && strings.Contains(line, wantEntry) {
				return true
			}
		}
		return false
	})
}

// agentProcess returns the running agent, or nil.
func (s *SPIRE) agentProcess() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent
}

// poll calls cond every interval until it returns true, ctx is done, or p
// (if not nil) exits.
func poll(ctx context.Context, p *process, interval time.Duration, cond func() bool) error {
	var exited <-chan struct{}
	if p != nil {
		exited = p.done
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-ticker.C:
		}
	}
}

// matchesSelf reports whether every selector is one the unix workload
// attestor reports for the calling process.
func matchesSelf(selectors []string) bool {
	self := map[string]bool{
		UIDSelector():                           true,
		"unix:gid:" + strconv.Itoa(os.Getgid()): true,
	}
	if u, err := user.Current(); err == nil {
		self["unix:user:"+u.Username] = true
	}
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getgid())); err == nil {
		self["unix:group:"+g.Name] = true
	}
	for _, sel := range selectors {
		if !self[sel] {
			return false
		}
	}
	return true
}

// resolveBinDir returns the directory holding both SPIRE binaries.
func resolveBinDir(dir string) (string, error) {
	how := "Options.BinDir"
	if dir == "" {
		dir, how = os.Getenv("SPIRE_BIN_DIR"), "SPIRE_BIN_DIR"
	}
	script := "scripts/build-spire.sh"
	if root, err := repoRoot(); err == nil {
		script = filepath.Join(root, script)
		if dir == "" {
			dir, how = defaultBinDir(root)
		}
	}
	if dir == "" {
		return "", fmt.Errorf("SPIRE binaries not found: run %s and set SPIRE_BIN_DIR to the directory it prints", script)
	}
	for _, name := range []string{"spire-server", "spire-agent"} {
		if _, err := exec.LookPath(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("SPIRE binaries not found in %s (from %s): %v; build them with %s", dir, how, err, script)
		}
	}
	return dir, nil
}

// repoRoot walks up from the working directory to the directory that holds
// tools/spire/go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "spire", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("tools/spire/go.mod not found above the working directory")
		}
		dir = parent
	}
}

// defaultBinDir returns the cache directory scripts/build-spire.sh uses for
// the SPIRE version pinned in tools/spire/go.mod, and where that came from.
func defaultBinDir(root string) (dir, how string) {
	gomod := filepath.Join(root, "tools", "spire", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", ""
	}
	var version string
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == "github.com/spiffe/spire" {
			version = f[1]
			break
		}
	}
	if version == "" {
		return "", ""
	}
	cache := os.Getenv("SVIDAGENT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", ""
		}
		cache = filepath.Join(home, ".cache", "svidagent")
	}
	return filepath.Join(cache, "spire-"+version, "bin"), "the build-spire.sh cache for " + gomod
}

// socketBaseDir returns os.TempDir, or /tmp if that is too long to hold
// unix socket paths.
func socketBaseDir() string {
	dir := os.TempDir()
	if len(dir)+len("/spiretest1234567890/agent.sock") > maxSocketPath {
		return "/tmp"
	}
	return dir
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ttlOrDefault returns ttl, or def if ttl is zero, as a SPIRE duration.
func ttlOrDefault(ttl, def time.Duration) string {
	if ttl <= 0 {
		ttl = def
	}
	return ttl.String()
}

// logTail writes the end of the log at path to t.
func logTail(t testing.TB, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("spiretest: reading %s: %v", path, err)
		return
	}
	if len(data) > maxLogDump {
		data = data[len(data)-maxLogDump:]
		t.Logf("spiretest: last %d bytes of %s:\n%s", maxLogDump, filepath.Base(path), data)
		return
	}
	t.Logf("spiretest: %s:\n%s", filepath.Base(path), data)
}

const serverConfTemplate = `server {
	bind_address = "127.0.0.1"
	bind_port = %d
	socket_path = %q
	trust_domain = %q
	data_dir = %q
	log_level = "DEBUG"
	ca_ttl = "24h"
	agent_ttl = "1h"
	default_x509_svid_ttl = %q
	default_jwt_svid_ttl = %q
	experimental {
		cache_reload_interval = "1s"
	}
}

plugins {
	DataStore "sql" {
		plugin_data {
			database_type = "sqlite3"
			connection_string = %q
		}
	}
	KeyManager "disk" {
		plugin_data {
			keys_path = %q
		}
	}
	NodeAttestor "join_token" {
		plugin_data {}
	}
}
`

const agentConfTemplate = `agent {
	data_dir = %q
	log_level = "DEBUG"
	server_address = "127.0.0.1"
	server_port = %d
	socket_path = %q
	trust_bundle_path = %q
	trust_domain = %q
	join_token = %q
	experimental {
		sync_interval = "1s"
	}
}

plugins {
	NodeAttestor "join_token" {
		plugin_data {}
	}
	KeyManager "disk" {
		plugin_data {
			directory = %q
		}
	}
	WorkloadAttestor "unix" {
		plugin_data {}
	}
}
`
