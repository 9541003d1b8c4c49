package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/svidagent/svidagent/agent"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/status")

// TestStatusGolden serves each canned /status in testdata/status and
// compares `svidagent status` with its .golden table.
func TestStatusGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/status/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/status" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			if code := run([]string{"status", "-addr", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if stdout.String() != string(want) {
				t.Errorf("output differs from %s:\n%s", golden, stdout.String())
			}

			// -json prints the agent's answer as it is.
			stdout.Reset()
			if code := run([]string{"status", "-json", "-addr", srv.URL}, &stdout, &stderr); code != exitOK || stdout.String() != string(body) {
				t.Errorf("-json: exit %d, output differs from the served JSON", code)
			}
		})
	}
}

func TestStatusHighlight(t *testing.T) {
	st := agent.Status{Live: true, Ready: true, Identities: []agent.IdentityStatus{
		{SPIFFEID: "spiffe://example.org/low", TimeLeft: "1m0s", Remaining: 0.19},
		{SPIFFEID: "spiffe://example.org/high", TimeLeft: "50m0s", Remaining: 0.2},
	}}
	tests := []struct {
		name      string
		color     bool
		want      []string
		wantNever []string
	}{
		{"terminal", true, []string{"\x1b[1;31m1m0s\x1b[0m", "50m0s\n"}, []string{"!", "\x1b[1;31m50m0s"}},
		{"not a terminal", false, []string{"1m0s !\n", "50m0s\n", "! less than 20% of the lifetime left"}, []string{"\x1b["}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printStatus(&b, st, tt.color)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tt.wantNever {
				if strings.Contains(b.String(), w) {
					t.Errorf("output has %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestStatusUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stdout, stderr bytes.Buffer
	code := run([]string{"status", "-addr", addr}, &stdout, &stderr)
	if code != exitRuntime {
		t.Errorf("exit %d, want %d", code, exitRuntime)
	}
	for _, want := range []string{"the agent is not reachable at http://" + addr + "/status", "connection refused", "-addr"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, stderr.String())
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
}

// TestStatusAgainstAgent runs the command against a real agent's health
// handler.
func TestStatusAgainstAgent(t *testing.T) {
	cfg, err := agent.LoadConfig("../../agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agent.New(cfg, agent.WithVersion("v0.0.0-test")).HealthHandler())
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-addr", srv.URL}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"agent:          NOT READY (v0.0.0-test)", "problem:        not started", "(nothing delivered yet)", "PLUGIN"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestStatusEscapesPluginText: plugin-controlled text in /status (an
// error, a plugin's name, a problem) that carries terminal escapes is
// printed escaped, as a table and with -json.
func TestStatusEscapesPluginText(t *testing.T) {
	// ESC, BEL, the 8-bit CSI (U+009B), DEL, a bidi override, invalid UTF-8.
	body := []byte(`{"live":true,"ready":false,"version":"v1\u001b[2J",
"problems":["svid web writer w: \u001b]0;pwned\u0007 \u009b31m \u007f \u202e"],
"identities":[{"svid":"web","spiffe_id":"spiffe://example.org/\u001b[5m","type":"x509","not_after":"2030-01-01T00:00:00Z","time_left":"1h"}],
"plugins":[{"name":"p\u001b[31m","kind":"notifier","runtime":"wasm","state":"failing","restarts":0,"last_error":"boom \u001b[2J\u001b[H` + "\x9b" + `"}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	raw := func(out []byte) string {
		if !utf8.Valid(out) {
			return "invalid UTF-8"
		}
		for _, c := range string(out) {
			if c != '\n' && (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x202e) {
				return fmt.Sprintf("%U", c)
			}
		}
		return ""
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-addr", srv.URL}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	if c := raw(stdout.Bytes()); c != "" {
		t.Errorf("the table has a raw %s:\n%q", c, &stdout)
	}
	for _, want := range []string{`boom \x1b[2J\x1b[H`, `p\x1b[31m`, `\x1b]0;pwned\a \u009b31m \x7f \u202e`, `v1\x1b[2J`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, &stdout)
		}
	}

	stdout.Reset()
	if code := run([]string{"status", "-json", "-addr", srv.URL}, &stdout, &stderr); code != exitOK {
		t.Fatalf("-json: exit %d: %s", code, &stderr)
	}
	if c := raw(stdout.Bytes()); c != "" {
		t.Errorf("-json has a raw %s:\n%q", c, &stdout)
	}
	var got, want any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("-json printed invalid JSON: %v", err)
	}
	_ = json.Unmarshal(body, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("-json changed the document:\n%s", &stdout)
	}
}
