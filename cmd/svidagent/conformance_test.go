package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestConformanceCommand(t *testing.T) {
	bins := t.TempDir()
	webhook, acceptall := filepath.Join(bins, "notifier-webhook"), filepath.Join(bins, "acceptall")
	for out, pkg := range map[string]string{webhook: "../../examples/notifier-webhook", acceptall: "../../conformance/testdata/broken/cmd/acceptall"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, b)
		}
	}
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hook" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hooks.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"url":"`+hooks.URL+`/hook"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	junit := filepath.Join(dir, "out.xml")
	host := strings.TrimPrefix(hooks.URL, "http://")

	t.Run("conforming plugin, JSON and JUnit", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"conformance", "-kind", "notifier", "-plugin", webhook, "-config", cfg, "-allow-host", host, "-json", "-junit", junit}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		var rep struct {
			Target  string
			Results []struct{ Name, Status, Reason string }
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("decoding the JSON report: %v\n%s", err, stdout.String())
		}
		if rep.Target != "notifier-webhook" || len(rep.Results) != 15 {
			t.Errorf("report target %q with %d results; want notifier-webhook with 15", rep.Target, len(rep.Results))
		}
		b, err := os.ReadFile(junit)
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			Suites []struct {
				Tests    int `xml:"tests,attr"`
				Failures int `xml:"failures,attr"`
				Cases    []struct {
					Name string `xml:"name,attr"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(b, &j); err != nil {
			t.Fatalf("decoding the JUnit report: %v\n%s", err, b)
		}
		if len(j.Suites) != 1 || j.Suites[0].Tests != 15 || j.Suites[0].Failures != 0 || j.Suites[0].Cases[0].Name != "abi_exports" {
			t.Errorf("JUnit report: %+v", j)
		}
	})
	t.Run("broken plugin", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"conformance", "-kind", "notifier", "-plugin", acceptall}, &stdout, &stderr)
		if code != exitRuntime {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitRuntime, stdout.String(), stderr.String())
		}
		want := `fail validate_rejects_invalid       Validate accepted the invalid config {"svidagent_conformance_unknown_attribute":true}; it must answer a problem`
		if !strings.Contains(stdout.String(), want+"\n") || !strings.Contains(stdout.String(), "FAIL acceptall: the plugin does not conform") {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	})
	t.Run("usage", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"conformance", "-kind", "notifier"}, &stdout, &stderr); code != exitUsage {
			t.Errorf("without -plugin: exit %d, want %d", code, exitUsage)
		}
		if code := run([]string{"conformance", "-kind", "gadget", "-plugin", acceptall}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), `unknown kind "gadget"`) {
			t.Errorf("unknown kind: exit %d, stderr %q", code, stderr.String())
		}
		stderr.Reset()
		notDir := filepath.Join(cfg, "out")
		if code := run([]string{"conformance", "-kind", "writer", "-plugin", acceptall, "-output-dir", notDir}, &stdout, &stderr); code != exitUsage ||
			!strings.Contains(stderr.String(), "creating the writer's output directory: mkdir "+cfg+": not a directory") {
			t.Errorf("-output-dir under a file: exit %d, stderr %q", code, stderr.String())
		}
	})
}
