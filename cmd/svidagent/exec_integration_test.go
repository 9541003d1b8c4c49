//go:build unix

package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/svidagent/svidagent/internal/spiretest"
)

// helperConf is a daemon helper.conf against spire writing into certs/.
func helperConf(socket string) string {
	return fmt.Sprintf(`
agent_address = %q
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
`, socket)
}

// TestExecWrapper runs `svidagent exec` against real SPIRE (spiffe-helper
// #249): the command starts with the credentials already on disk, gets
// the signals the agent gets, and its exit code, or 128+N for a signal N,
// is the agent's.
func TestExecWrapper(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{})
	id := "spiffe://" + spire.TrustDomain() + "/exec"
	spire.CreateEntry(t, id, spiretest.UIDSelector())
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "helper.conf"), helperConf(spire.SocketPath()))

	run := func(t *testing.T, argv ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(agentBin, append([]string{"exec", "-config", "helper.conf", "--"}, argv...)...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running svidagent exec: %v", err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}
	t.Run("exit code, files in place first", func(t *testing.T) {
		code, out := run(t, "/bin/sh", "-c", "test -s certs/svid.pem && test -s certs/svid_key.pem && exit 7; exit 1")
		if code != 7 {
			t.Fatalf("exit code %d, want 7 (1: the files were not there when the command started); output:\n%s", code, out)
		}
	})
	t.Run("killed by a signal", func(t *testing.T) {
		code, out := run(t, "/bin/sh", "-c", "kill -KILL $$")
		if code != 128+int(syscall.SIGKILL) {
			t.Fatalf("exit code %d, want %d; output:\n%s", code, 128+int(syscall.SIGKILL), out)
		}
	})
	t.Run("wall time", func(t *testing.T) {
		// A figure for the docs, not an assertion: `exec -- true`, from
		// exec to exit, median of 10.
		t.Logf("svidagent exec -- true against real SPIRE: median wall %v of 10", medianWall(10, func() {
			if code, out := run(t, "true"); code != 0 {
				t.Fatalf("exec -- true: exit %d\n%s", code, out)
			}
		}))
	})
	t.Run("signals forwarded", func(t *testing.T) {
		rec := filepath.Join(dir, "rec.log")
		p := startAgent(t, dir, "exec", "-config", "helper.conf", "--", recorderBin, rec)
		testkit.WaitFor(t, 30*time.Second, "the command to start", func() bool {
			l := lines(rec)
			return len(l) > 0 && strings.HasPrefix(l[0], "start ")
		})
		if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, "the command to get SIGUSR1", func() bool { return slices.Contains(lines(rec), "signal SIGUSR1") })
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit code %d, want the command's 0 after SIGTERM; output:\n%s", code, p.out.String())
		}
		if got := lines(rec); got[len(got)-1] != "term" {
			t.Fatalf("the command's last record is %q, want term (SIGTERM forwarded)", got[len(got)-1])
		}
	})
}

// TestFetchJWTToStdout: `svidagent fetch -jwt-audience` prints a JWT-SVID
// from real SPIRE on stdout, for both formats, and writes no file.
func TestFetchJWTToStdout(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{})
	id := "spiffe://" + spire.TrustDomain() + "/jwt"
	spire.CreateEntry(t, id, spiretest.UIDSelector())
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "helper.conf"), helperConf(spire.SocketPath()))
	for _, format := range []string{"token", "json"} {
		t.Run(format, func(t *testing.T) {
			cmd := exec.Command(agentBin, "fetch", "-config", "helper.conf", "-jwt-audience", "api", "-jwt-audience", "extra", "-format", format)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("fetch -jwt-audience: %v\n%s", err, stderr.String())
			}
			token := strings.TrimSpace(stdout.String())
			if format == "json" {
				var v struct {
					SPIFFEID  string    `json:"spiffe_id"`
					Token     string    `json:"token"`
					ExpiresAt time.Time `json:"expires_at"`
					Audience  []string  `json:"audience"`
				}
				if err := json.Unmarshal([]byte(token), &v); err != nil {
					t.Fatalf("stdout is not the JSON object: %v\n%s", err, token)
				}
				if v.SPIFFEID != id || v.ExpiresAt.Before(time.Now()) || !slices.Equal(v.Audience, []string{"api", "extra"}) {
					t.Fatalf("JSON = %+v, want %s, a future expiry and audiences [api extra]", v, id)
				}
				token = v.Token
			}
			svid, err := jwtsvid.ParseInsecure(token, []string{"api"})
			if err != nil {
				t.Fatalf("stdout is not a JWT-SVID for api: %v\n%q", err, token)
			}
			if svid.ID.String() != id || !slices.Contains(svid.Audience, "extra") {
				t.Fatalf("JWT-SVID for %s with audiences %v, want %s with extra", svid.ID, svid.Audience, id)
			}
			if _, err := os.Stat(filepath.Join(dir, "certs")); !os.IsNotExist(err) {
				t.Fatalf("fetch -jwt-audience wrote to disk (certs: %v)", err)
			}
		})
	}
	t.Logf("svidagent fetch -jwt-audience against real SPIRE: median wall %v of 10", medianWall(10, func() {
		cmd := exec.Command(agentBin, "fetch", "-config", "helper.conf", "-jwt-audience", "api")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("fetch -jwt-audience: %v\n%s", err, out)
		}
	}))
}

// medianWall runs f n times and returns the median wall time: a figure to
// log, never to assert on.
func medianWall(n int, f func()) time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		f()
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[n/2]
}

// TestPIDFileRetryAgainstSPIRE is spiffe-helper #333 end to end: the pid
// file is not there at the first rotation from real SPIRE; the agent
// retries the signal and the process gets it once the file appears,
// without another rotation.
func TestPIDFileRetryAgainstSPIRE(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{})
	id := "spiffe://" + spire.TrustDomain() + "/pidretry"
	spire.CreateEntry(t, id, spiretest.UIDSelector())
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec.log")
	app := exec.Command(recorderBin, rec)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	testkit.WaitFor(t, 10*time.Second, "the process to start", func() bool { return len(lines(rec)) > 0 })
	pidFile := filepath.Join(dir, "app.pid")
	writeFile(t, filepath.Join(dir, "helper.conf"), helperConf(spire.SocketPath())+fmt.Sprintf(`
pid_file_name = %q
renew_signal = "SIGUSR1"
`, pidFile))
	p := startAgent(t, dir, "-config", "helper.conf")
	testkit.WaitFor(t, 60*time.Second, "the first signal to fail", func() bool {
		return strings.Contains(p.out.String(), "notifying failed")
	})
	writeFile(t, pidFile, fmt.Sprintf("%d\n", app.Process.Pid))
	testkit.WaitFor(t, 30*time.Second, "the retried signal", func() bool { return slices.Contains(lines(rec), "signal SIGUSR1") })
	if n := strings.Count(p.out.String(), "credentials delivered"); n != 1 {
		t.Fatalf("%d deliveries, want the first only: the signal came from a retry, not a new rotation", n)
	}
}

// TestCommandGetsAgentStdinAgainstSPIRE is spiffe-helper #245 end to end:
// helper.conf's cmd reads the agent's standard input.
func TestCommandGetsAgentStdinAgainstSPIRE(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{})
	id := "spiffe://" + spire.TrustDomain() + "/stdin"
	spire.CreateEntry(t, id, spiretest.UIDSelector())
	dir := t.TempDir()
	got := filepath.Join(dir, "stdin.txt")
	script := filepath.Join(dir, "app.sh")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\nread line\necho \"got $line\" > %s\nexec sleep 1000\n", got))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "helper.conf"), helperConf(spire.SocketPath())+fmt.Sprintf("cmd = %q\n", script))
	cmd := exec.Command(agentBin, "-config", "helper.conf")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("from-agent-stdin\n")
	var out testkit.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("svidagent output:\n%s", out.String())
		}
	})
	testkit.WaitFor(t, 60*time.Second, "the command's line from stdin", func() bool {
		b, _ := os.ReadFile(got)
		return strings.TrimSpace(string(b)) == "got from-agent-stdin"
	})
}
