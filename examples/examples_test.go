// Package examples_test checks the deployment examples against the real
// configuration loader: the Kubernetes ConfigMaps' files (which the nested
// examples/kubernetes module's test checks the manifests against), the
// systemd unit and its agent.hcl, and the Dockerfile.
package examples_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/plugins/files"
	"github.com/svidagent/svidagent/plugins/workloadapi"
)

// load loads an example configuration with the real loader.
func load(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading %s: %s", path, config.FormatError(err, nil))
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("%s: warnings: %v", path, cfg.Warnings)
	}
	return cfg
}

// filesDirs returns the dir of every files writer in cfg.
func filesDirs(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	var dirs []string
	for _, s := range cfg.SVIDs {
		for _, w := range s.Writers {
			fc, ok := w.Config.(*files.Config)
			if !ok {
				t.Fatalf("svid %q: writer %q is not a files writer", s.Name, w.Name)
			}
			dirs = append(dirs, fc.Dir)
		}
	}
	return dirs
}

// TestKubernetesConfigs loads the files the Kubernetes manifests' ConfigMaps
// mirror and checks the values the manifests rely on: the health port and
// paths their probes use, the output dir on the memory-backed emptyDir and
// the socket under the SPIFFE CSI driver's mount.
func TestKubernetesConfigs(t *testing.T) {
	tests := []struct {
		file       string
		format     config.Format
		layout     string
		stateDir   string
		socketPath string
	}{
		{file: "agent.hcl", format: config.FormatNative, layout: "spiffe-fs", stateDir: "/var/lib/svidagent"},
		{file: "helper.conf", format: config.FormatSPIFFEHelper, layout: "flat"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg := load(t, filepath.Join("kubernetes", "config", tt.file))
			if cfg.Format != tt.format {
				t.Errorf("format %q, want %q", cfg.Format, tt.format)
			}
			if !cfg.DaemonMode {
				t.Error("daemon_mode is false: the sidecars must keep running (the one-shot uses `fetch`)")
			}
			h := cfg.Health
			host, port, err := net.SplitHostPort(h.Address)
			switch {
			case !h.Enabled:
				t.Error("health is not enabled: the probes would fail")
			case err != nil:
				t.Errorf("health address %q: %v", h.Address, err)
			case host != "" && host != "0.0.0.0" && host != "::":
				t.Errorf("health listens on %q: the kubelet probes the pod IP, listen on every interface", host)
			case port != "8081" || h.LivenessPath != "/live" || h.ReadinessPath != "/ready":
				t.Errorf("health %+v; the manifests probe :8081 /live and /ready", h)
			}
			if got := cfg.StateDir; got != tt.stateDir {
				t.Errorf("state_dir %q, want %q (the manifests mount an emptyDir there)", got, tt.stateDir)
			}
			if len(cfg.Issuers) != 1 || cfg.Issuers[0].Type != "workloadapi" {
				t.Fatalf("issuers %+v, want one workloadapi", cfg.Issuers)
			}
			addr := cfg.Issuers[0].Config.(*workloadapi.Config).Address
			if !strings.HasPrefix(strings.TrimPrefix(addr, "unix://"), "/spiffe-workload-api/") {
				t.Errorf("Workload API address %q is not under the SPIFFE CSI mount /spiffe-workload-api", addr)
			}
			if len(cfg.SVIDs) != 1 || len(cfg.SVIDs[0].Writers) != 1 {
				t.Fatalf("want one svid with one writer, got %+v", cfg.SVIDs)
			}
			fc := cfg.SVIDs[0].Writers[0].Config.(*files.Config)
			if fc.Dir != "/run/svid" || fc.Layout != tt.layout {
				t.Errorf("writer dir %q layout %q, want /run/svid and %q", fc.Dir, fc.Layout, tt.layout)
			}
		})
	}
}

// unit is a parsed systemd unit: section → key → values, in order (a key
// may repeat).
type unit map[string]map[string][]string

// parseUnit reads a unit file: [Section] headers, Key=Value lines, # and ;
// comments, and backslash line continuations.
func parseUnit(src string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	var cont string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cont = cont+line, ""
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is not Key=Value in a section", n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// get returns the last value of key (the one systemd uses), and whether
// the key is set at all.
func (u unit) get(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// unitHardening is what the example unit must set, exactly.
var unitHardening = map[string]string{
	"Type":                    "simple",
	"Restart":                 "on-failure",
	"ExecReload":              "/bin/kill -HUP $MAINPID",
	"DynamicUser":             "yes",
	"StateDirectory":          "svidagent",
	"RuntimeDirectory":        "svidagent",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"NoNewPrivileges":         "yes",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectKernelLogs":       "yes",
	"ProtectControlGroups":    "yes",
	"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
	"RestrictNamespaces":      "yes",
	"RestrictSUIDSGID":        "yes",
	"LockPersonality":         "yes",
	"SystemCallFilter":        "@system-service",
	"SystemCallArchitectures": "native",
	"CapabilityBoundingSet":   "", // empty: no capabilities at all
	"AmbientCapabilities":     "",
}

// checkUnit checks a unit against its agent configuration (loaded from
// configDir, named by ExecStart) and returns what is wrong.
func checkUnit(t *testing.T, u unit, configDir string) (problems []string) {
	t.Helper()
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for k, want := range unitHardening {
		got, ok := u.get("Service", k)
		if !ok {
			bad("[Service] %s is missing; want %s=%s", k, k, want)
		} else if got != want {
			bad("[Service] %s=%s, want %s", k, got, want)
		}
	}

	exec, _ := u.get("Service", "ExecStart")
	args := strings.Fields(exec)
	i := slices.Index(args, "-config")
	if len(args) < 2 || args[0] != "/usr/local/bin/svidagent" || args[1] != "run" || i < 0 || i+1 >= len(args) {
		bad("ExecStart=%s, want /usr/local/bin/svidagent run -config FILE", exec)
		return problems
	}
	cfgPath := args[i+1]
	if cfgPath != "/etc/svidagent/agent.hcl" {
		bad("ExecStart's config %s, want /etc/svidagent/agent.hcl (the documented install path)", cfgPath)
	}
	local := filepath.Join(configDir, filepath.Base(cfgPath))
	if _, err := os.Stat(local); err != nil {
		bad("ExecStart's config %s has no example beside the unit: %v", cfgPath, err)
		return problems
	}

	// $STATE_DIRECTORY is what systemd passes for StateDirectory=; the
	// agent must use it when the config sets no state_dir.
	stateName, _ := u.get("Service", "StateDirectory")
	t.Setenv("STATE_DIRECTORY", "/var/lib/"+stateName)
	cfg := load(t, local)
	if got := cfg.StateDirectory(); got != "/var/lib/"+stateName {
		bad("the agent's state directory is %q, not StateDirectory=%s's /var/lib/%s", got, stateName, stateName)
	}

	// Every output dir must be writable under ProtectSystem=strict: under
	// ReadWritePaths=, and on the RuntimeDirectory= tmpfs (off disk).
	var rw []string
	for _, v := range u["Service"]["ReadWritePaths"] {
		rw = append(rw, strings.Fields(v)...)
	}
	runtimeName, _ := u.get("Service", "RuntimeDirectory")
	under := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") }
	for _, dir := range filesDirs(t, cfg) {
		if !slices.ContainsFunc(rw, func(w string) bool { return under(dir, strings.TrimPrefix(w, "-")) }) {
			bad("writer dir %s is not under ReadWritePaths=%v", dir, rw)
		}
		if !under(dir, "/run/"+runtimeName) {
			bad("writer dir %s is not under RuntimeDirectory=%s (/run/%s, a tmpfs)", dir, runtimeName, runtimeName)
		}
	}

	// W^X: wazero's compiler needs memory that was writable to become
	// executable, so MemoryDenyWriteExecute=yes breaks WASM plugins.
	mdwe, _ := u.get("Service", "MemoryDenyWriteExecute")
	hasWASM := slices.ContainsFunc(cfg.Plugins, func(e *config.External) bool { return e.Runtime == config.RuntimeWASM })
	if mdwe == "yes" && hasWASM {
		bad("MemoryDenyWriteExecute=yes with a WASM plugin: wazero's compiler cannot map code executable")
	}
	if mdwe == "" {
		bad("MemoryDenyWriteExecute is not set: decide it (no with WASM plugins, yes without) and say why")
	}
	return problems
}

func TestSystemdUnit(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("systemd", "svidagent.service"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkUnit(t, u, "systemd") {
		t.Error(p)
	}
	if _, ok := u.get("Install", "WantedBy"); !ok {
		t.Error("[Install] WantedBy is missing: systemctl enable would do nothing")
	}
}

// TestSystemdUnitCatches breaks the unit one way at a time and checks that
// checkUnit notices.
func TestSystemdUnitCatches(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("systemd", "svidagent.service"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(u unit)
		want string
	}{
		{"hardening key removed", func(u unit) { delete(u["Service"], "ProtectSystem") }, "ProtectSystem is missing"},
		{"weaker value", func(u unit) { u["Service"]["ProtectSystem"] = []string{"full"} }, "ProtectSystem=full, want strict"},
		{"a later line overrides", func(u unit) { u["Service"]["NoNewPrivileges"] = append(u["Service"]["NoNewPrivileges"], "no") }, "NoNewPrivileges=no"},
		{"capabilities kept", func(u unit) { u["Service"]["CapabilityBoundingSet"] = []string{"CAP_KILL"} }, "CapabilityBoundingSet=CAP_KILL"},
		{"other config path", func(u unit) {
			u["Service"]["ExecStart"] = []string{"/usr/local/bin/svidagent run -config /etc/svidagent/other.hcl"}
		}, "has no example beside the unit"},
		{"no -config", func(u unit) { u["Service"]["ExecStart"] = []string{"/usr/local/bin/svidagent"} }, "want /usr/local/bin/svidagent run -config FILE"},
		{"cert dir not writable", func(u unit) { delete(u["Service"], "ReadWritePaths") }, "is not under ReadWritePaths"},
		{"cert dir on disk", func(u unit) {
			u["Service"]["RuntimeDirectory"] = []string{"other"}
			u["Service"]["ReadWritePaths"] = []string{"/run/svidagent"}
		}, "is not under RuntimeDirectory=other"},
		{"MemoryDenyWriteExecute undecided", func(u unit) { delete(u["Service"], "MemoryDenyWriteExecute") }, "MemoryDenyWriteExecute is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := parseUnit(string(src))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(u)
			problems := checkUnit(t, u, "systemd")
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("problems %q, want one containing %q", problems, tt.want)
			}
		})
	}
}

func TestParseUnit(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		section string
		key     string
		want    string
		wantErr bool
	}{
		{name: "plain", src: "[Service]\nType=simple\n", section: "Service", key: "Type", want: "simple"},
		{name: "comments", src: "# c\n; c\n[Service]\n# Type=notify\nType=simple\n", section: "Service", key: "Type", want: "simple"},
		{name: "empty value", src: "[Service]\nCapabilityBoundingSet=\n", section: "Service", key: "CapabilityBoundingSet", want: ""},
		{name: "last wins", src: "[Service]\nRestart=no\nRestart=on-failure\n", section: "Service", key: "Restart", want: "on-failure"},
		{name: "continuation", src: "[Service]\nExecStart=/bin/a \\\n  -b\n", section: "Service", key: "ExecStart", want: "/bin/a  -b"},
		{name: "key outside a section", src: "Type=simple\n", wantErr: true},
		{name: "not key=value", src: "[Service]\nType\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := parseUnit(tt.src)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			got, ok := u.get(tt.section, tt.key)
			if !ok || got != tt.want {
				t.Fatalf("%s.%s = %q (set %v), want %q", tt.section, tt.key, got, ok, tt.want)
			}
		})
	}
}

// TestDockerfile checks the Dockerfile, which cannot be built here: the
// builder's Go matches go.mod, the binary is static and stripped, the
// final stage is distroless nonroot, and the default command uses the
// documented config path.
func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVersion == nil {
		t.Fatal("no go directive in go.mod")
	}
	df := string(src)
	want := []struct{ what, re string }{
		{"a builder on go.mod's Go", `(?m)^FROM golang:` + regexp.QuoteMeta(string(goVersion[1])) + `\S* AS build$`},
		{"a static, stripped, trimmed build", `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w[^"]*"`},
		{"the agent's main package", `\./cmd/svidagent\b`},
		{"a distroless nonroot final stage", `(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`},
		{"a nonroot user", `(?m)^USER nonroot(:nonroot)?$`},
		{"the binary as entrypoint", `(?m)^ENTRYPOINT \["/svidagent"\]$`},
		{"run with the documented config", `(?m)^CMD \["run", "-config", "/etc/svidagent/agent\.hcl"\]$`},
	}
	for _, w := range want {
		if !regexp.MustCompile(w.re).MatchString(df) {
			t.Errorf("Dockerfile lacks %s (/%s/)", w.what, w.re)
		}
	}
	if froms := regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1); len(froms) != 2 {
		t.Errorf("%d FROM lines, want 2 (builder and final)", len(froms))
	}
	if strings.Contains(df, "/bin/sh") || regexp.MustCompile(`(?m)^(ENTRYPOINT|CMD) [^\[]`).MatchString(df) {
		t.Error("the final image has no shell: use the exec (JSON) form")
	}
}
