package kubernetes_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// agentImage is the (placeholder) image of every svidagent container.
const agentImage = "ghcr.io/svidagent/svidagent:"

// kinds are the objects the examples may contain, by apiVersion/kind.
var kinds = map[string]func() any{
	"v1/ConfigMap":       func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":  func() any { return &corev1.ServiceAccount{} },
	"v1/Pod":             func() any { return &corev1.Pod{} },
	"apps/v1/Deployment": func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":       func() any { return &batchv1.Job{} },
}

// decodeStrict decodes one YAML document into out the way the API
// server's strict field validation does (sigs.k8s.io/json): field names
// match case-sensitively (encoding/json would accept "readonly" for
// readOnly), and duplicate keys and fields out's type does not have are
// errors.
func decodeStrict(doc []byte, out any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return fmt.Errorf("converting to JSON: %w", err)
	}
	strict, err := kjson.UnmarshalStrict(j, out)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifest decodes every document of a multi-document manifest into
// its typed object.
func decodeManifest(data []byte) ([]any, error) {
	var objs []any
	for i, doc := range docSep.Split(string(data), -1) {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if tm.APIVersion == "" && tm.Kind == "" && strings.TrimSpace(stripComments(doc)) == "" {
			continue // empty document
		}
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: unexpected apiVersion %q kind %q", i, tm.APIVersion, tm.Kind)
		}
		obj := newObj()
		if err := decodeStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// manifest is one decoded example file.
type manifest struct {
	file       string
	configMaps map[string]*corev1.ConfigMap
	pods       []*corev1.PodSpec // from Pods, Deployments and Jobs
}

func loadManifest(t *testing.T, file string) *manifest {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifest(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	m := &manifest{file: file, configMaps: map[string]*corev1.ConfigMap{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Pod:
			m.pods = append(m.pods, &o.Spec)
		case *appsv1.Deployment:
			m.pods = append(m.pods, &o.Spec.Template.Spec)
		case *batchv1.Job:
			m.pods = append(m.pods, &o.Spec.Template.Spec)
		}
	}
	return m
}

// agentSettings is what the checks need from an agent configuration. The
// root module's examples test loads the same files with the real loader.
type agentSettings struct {
	healthPort          int
	livePath, readyPath string
	outputDir           string // the files writer's dir / cert_dir
	socket              string // the Workload API socket path
}

var (
	reHealthAddr = regexp.MustCompile(`(?m)^\s*address\s*=\s*"([^"]*:[0-9]+)"`)
	reBindPort   = regexp.MustCompile(`(?m)^\s*bind_port\s*=\s*([0-9]+)`)
	reLive       = regexp.MustCompile(`(?m)^\s*liveness_path\s*=\s*"([^"]+)"`)
	reReady      = regexp.MustCompile(`(?m)^\s*readiness_path\s*=\s*"([^"]+)"`)
	reDir        = regexp.MustCompile(`(?m)^\s*(?:dir|cert_dir)\s*=\s*"([^"]+)"`)
	reSocket     = regexp.MustCompile(`(?m)^\s*(?:address|agent_address)\s*=\s*"(?:unix://)?(/[^"]+)"`)
)

func parseSettings(src string) (agentSettings, error) {
	s := agentSettings{livePath: "/live", readyPath: "/ready"}
	switch {
	case reHealthAddr.MatchString(src):
		_, port, err := net.SplitHostPort(reHealthAddr.FindStringSubmatch(src)[1])
		if err != nil {
			return s, err
		}
		s.healthPort, _ = strconv.Atoi(port)
	case reBindPort.MatchString(src):
		s.healthPort, _ = strconv.Atoi(reBindPort.FindStringSubmatch(src)[1])
	default:
		return s, errors.New("no health port")
	}
	if m := reLive.FindStringSubmatch(src); m != nil {
		s.livePath = m[1]
	}
	if m := reReady.FindStringSubmatch(src); m != nil {
		s.readyPath = m[1]
	}
	m := reDir.FindStringSubmatch(src)
	if m == nil {
		return s, errors.New("no output dir")
	}
	s.outputDir = m[1]
	m = reSocket.FindStringSubmatch(src)
	if m == nil {
		return s, errors.New("no Workload API socket path")
	}
	s.socket = m[1]
	return s, nil
}

// agentContainer is one svidagent container of a pod.
type agentContainer struct {
	c        *corev1.Container
	init     bool // in initContainers
	sidecar  bool // an init container with restartPolicy: Always
	oneShot  bool // runs `svidagent fetch`
	settings agentSettings
}

// checkPod checks the examples' invariants for one pod spec and returns
// what is wrong. cms are the ConfigMaps of the manifest; configs are the
// files under config/, by name.
func checkPod(spec *corev1.PodSpec, cms map[string]*corev1.ConfigMap, configs map[string]string) (agents []agentContainer, problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	volumes := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		volumes[spec.Volumes[i].Name] = &spec.Volumes[i]
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		bad("pod: automountServiceAccountToken is not false (the agent needs no Kubernetes API token)")
	}

	type ctr struct {
		c    *corev1.Container
		init bool
	}
	var all []ctr
	for i := range spec.InitContainers {
		all = append(all, ctr{&spec.InitContainers[i], true})
	}
	for i := range spec.Containers {
		all = append(all, ctr{&spec.Containers[i], false})
	}

	for _, x := range all {
		problems = append(problems, checkHardening(spec, x.c)...)
	}

	for _, x := range all {
		c := x.c
		if !strings.HasPrefix(c.Image, agentImage) {
			continue
		}
		a := agentContainer{c: c, init: x.init}
		a.sidecar = x.init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		a.oneShot = len(c.Args) > 0 && c.Args[0] == "fetch"
		if x.init && !a.sidecar && !a.oneShot {
			bad("%s: a plain init container must run `fetch` (one-shot), or set restartPolicy: Always", c.Name)
		}
		if !x.init && a.oneShot {
			bad("%s: `fetch` exits: run it as an init container", c.Name)
		}

		// The configuration: -config names a file on a ConfigMap mount,
		// and the ConfigMap mirrors config/<file>.
		i := slices.Index(c.Args, "-config")
		if i < 0 || i+1 >= len(c.Args) {
			bad("%s: no -config argument", c.Name)
			continue
		}
		cfgPath := c.Args[i+1]
		mnt := mountFor(c, cfgPath)
		if mnt == nil || volumes[mnt.Name] == nil || volumes[mnt.Name].ConfigMap == nil {
			bad("%s: %s is not on a ConfigMap volume", c.Name, cfgPath)
			continue
		}
		cm := cms[volumes[mnt.Name].ConfigMap.Name]
		key := filepath.Base(cfgPath)
		if cm == nil {
			bad("%s: ConfigMap %q is not in the manifest", c.Name, volumes[mnt.Name].ConfigMap.Name)
			continue
		}
		src, ok := cm.Data[key]
		if !ok {
			bad("%s: ConfigMap %q has no key %q", c.Name, cm.Name, key)
			continue
		}
		if want, ok := configs[key]; !ok || src != want {
			bad("%s: ConfigMap %q key %q differs from config/%s; copy the file into the ConfigMap", c.Name, cm.Name, key, key)
		}
		s, err := parseSettings(src)
		if err != nil {
			bad("%s: reading %s: %v", c.Name, key, err)
			continue
		}
		a.settings = s

		// Probes: every long-running agent has liveness and readiness
		// on the configured health port and paths; a one-shot has none.
		if a.oneShot {
			if c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil {
				bad("%s: a one-shot fetch serves no health endpoint; remove its probes", c.Name)
			}
		} else {
			checkProbe := func(what string, p *corev1.Probe, path string) {
				switch {
				case p == nil || p.HTTPGet == nil:
					bad("%s: no httpGet %s probe", c.Name, what)
				case p.HTTPGet.Path != path:
					bad("%s: %s probe path %q, want %q", c.Name, what, p.HTTPGet.Path, path)
				case portNumber(c, p.HTTPGet.Port) != s.healthPort:
					bad("%s: %s probe port %s is not the health port %d", c.Name, what, p.HTTPGet.Port.String(), s.healthPort)
				}
			}
			checkProbe("liveness", c.LivenessProbe, s.livePath)
			checkProbe("readiness", c.ReadinessProbe, s.readyPath)
			if a.sidecar {
				// The application must wait for the first credentials.
				checkProbe("startup", c.StartupProbe, s.readyPath)
			}
		}

		// Credentials: the output dir is on a writable, memory-backed
		// emptyDir, which every other container mounts read-only.
		mnt = mountFor(c, s.outputDir)
		switch {
		case mnt == nil:
			bad("%s: output dir %s is not on a volume", c.Name, s.outputDir)
		case mnt.ReadOnly:
			bad("%s: output dir %s is mounted read-only", c.Name, s.outputDir)
		case volumes[mnt.Name] == nil || volumes[mnt.Name].EmptyDir == nil:
			bad("%s: output dir %s is not on an emptyDir", c.Name, s.outputDir)
		case volumes[mnt.Name].EmptyDir.Medium != corev1.StorageMediumMemory:
			bad("%s: output dir volume %q is not medium: Memory (credentials must stay off disk)", c.Name, mnt.Name)
		default:
			shared := false
			for _, y := range all {
				if y.c == c {
					continue
				}
				for _, m := range y.c.VolumeMounts {
					if m.Name == mnt.Name {
						shared = true
						if !m.ReadOnly {
							bad("%s: mounts the credentials volume %q writable; mount it readOnly", y.c.Name, m.Name)
						}
					}
				}
			}
			if !shared {
				bad("%s: no other container mounts the credentials volume %q", c.Name, mnt.Name)
			}
		}

		// The Workload API socket comes from the SPIFFE CSI driver.
		mnt = mountFor(c, s.socket)
		switch {
		case mnt == nil:
			bad("%s: Workload API socket %s is not on a volume", c.Name, s.socket)
		case !mnt.ReadOnly:
			bad("%s: the Workload API socket mount is not readOnly", c.Name)
		case volumes[mnt.Name] == nil || volumes[mnt.Name].CSI == nil:
			bad("%s: the Workload API socket is not on a CSI volume", c.Name)
		case volumes[mnt.Name].CSI.Driver != "csi.spiffe.io":
			bad("%s: CSI driver %q, want csi.spiffe.io", c.Name, volumes[mnt.Name].CSI.Driver)
		case volumes[mnt.Name].CSI.ReadOnly == nil || !*volumes[mnt.Name].CSI.ReadOnly:
			bad("%s: the SPIFFE CSI volume is not readOnly (the driver requires it)", c.Name)
		}

		problems = append(problems, checkResources(c)...)
		agents = append(agents, a)
	}
	if len(agents) == 0 {
		bad("pod: no svidagent container (image %s...)", agentImage)
	}
	return agents, problems
}

// checkHardening checks a container's effective securityContext.
func checkHardening(pod *corev1.PodSpec, c *corev1.Container) (problems []string) {
	bad := func(format string, args ...any) {
		problems = append(problems, c.Name+": "+fmt.Sprintf(format, args...))
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		bad("no securityContext")
		return problems
	}
	if !isTrue(sc.RunAsNonRoot) && !(sc.RunAsNonRoot == nil && isTrue(psc.RunAsNonRoot)) {
		bad("runAsNonRoot is not true")
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if uid != nil && *uid == 0 {
		bad("runs as uid 0")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		bad("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		bad("privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		bad("capabilities do not drop ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		bad("capabilities add %v", sc.Capabilities.Add)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("seccompProfile is not RuntimeDefault")
	}
	return problems
}

// checkResources checks an agent container's requests and limits against
// what the agent uses (20-40 MiB resident).
func checkResources(c *corev1.Container) (problems []string) {
	bad := func(format string, args ...any) {
		problems = append(problems, c.Name+": "+fmt.Sprintf(format, args...))
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	memReq, okReq := req[corev1.ResourceMemory]
	memLim, okLim := lim[corev1.ResourceMemory]
	if _, ok := req[corev1.ResourceCPU]; !ok {
		bad("no cpu request")
	}
	if !okReq || !okLim {
		bad("memory request and limit must both be set")
		return problems
	}
	if memReq.Cmp(resource.MustParse("16Mi")) < 0 || memReq.Cmp(resource.MustParse("64Mi")) > 0 {
		bad("memory request %s is outside 16Mi-64Mi (the agent uses 20-40 MiB)", memReq.String())
	}
	if memLim.Cmp(memReq) < 0 || memLim.Cmp(resource.MustParse("128Mi")) > 0 {
		bad("memory limit %s must be at least the request and at most 128Mi", memLim.String())
	}
	return problems
}

func isTrue(b *bool) bool { return b != nil && *b }

// mountFor returns c's volume mount holding path (the longest match).
func mountFor(c *corev1.Container, path string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		mp := strings.TrimSuffix(m.MountPath, "/")
		if path == mp || strings.HasPrefix(path, mp+"/") {
			if best == nil || len(mp) > len(best.MountPath) {
				best = m
			}
		}
	}
	return best
}

// portNumber resolves a probe's port (a number or a named container port).
func portNumber(c *corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func readConfigs(t *testing.T) map[string]string {
	t.Helper()
	configs := map[string]string{}
	for _, name := range []string{"agent.hcl", "helper.conf"} {
		b, err := os.ReadFile(filepath.Join("config", name))
		if err != nil {
			t.Fatal(err)
		}
		configs[name] = string(b)
	}
	return configs
}

// TestManifests decodes every example and checks its invariants and the
// deployment pattern it illustrates.
func TestManifests(t *testing.T) {
	configs := readConfigs(t)
	tests := []struct {
		file    string
		pattern string // sidecar | native-sidecar | one-shot
		config  string // the config/ file its ConfigMap mirrors
	}{
		{file: "sidecar.yaml", pattern: "sidecar", config: "agent.hcl"},
		{file: "sidecar-helper-conf.yaml", pattern: "sidecar", config: "helper.conf"},
		{file: "native-sidecar.yaml", pattern: "native-sidecar", config: "agent.hcl"},
		{file: "init-oneshot.yaml", pattern: "one-shot", config: "agent.hcl"},
	}

	// Every manifest in the directory is covered by the table.
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tt := range tests {
		listed = append(listed, tt.file)
	}
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Fatalf("manifests %v, the test covers %v: add the new file to the table", files, listed)
	}

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := loadManifest(t, tt.file)
			if len(m.pods) != 1 {
				t.Fatalf("%d workloads, want 1", len(m.pods))
			}
			agents, problems := checkPod(m.pods[0], m.configMaps, configs)
			for _, p := range problems {
				t.Error(p)
			}
			if len(agents) != 1 {
				t.Fatalf("%d svidagent containers, want 1", len(agents))
			}
			a := agents[0]
			var got string
			switch {
			case a.sidecar:
				got = "native-sidecar"
			case a.oneShot && a.init:
				got = "one-shot"
			case !a.init:
				got = "sidecar"
			}
			if got != tt.pattern {
				t.Errorf("pattern %q, want %q", got, tt.pattern)
			}
			held := false
			for _, cm := range m.configMaps {
				_, ok := cm.Data[tt.config]
				held = held || ok
			}
			if !held {
				t.Errorf("no ConfigMap holds %s", tt.config)
			}
			if a.settings.healthPort != 8081 || a.settings.livePath != "/live" || a.settings.readyPath != "/ready" {
				t.Errorf("health settings %+v; the docs promise :8081, /live, /ready", a.settings)
			}
		})
	}
}

// TestDecodeStrict shows that the decoding rejects what a real schema
// check would: misspelt and misplaced fields, duplicate keys, wrong types,
// unknown kinds.
func TestDecodeStrict(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{name: "valid", doc: cm + "data:\n  a: b\n"},
		{name: "comments and empty documents", doc: "# a comment\n---\n" + cm + "---\n"},
		{name: "unknown top-level field", doc: cm + "dta:\n  a: b\n", wantErr: `unknown field "dta"`},
		{name: "misspelt nested field", doc: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n    - name: a\n      image: b\n      volumeMounts:\n        - name: v\n          mountPath: /v\n          readonly: true\n", wantErr: `unknown field "spec.containers[0].volumeMounts[0].readonly"`},
		{name: "duplicate key", doc: cm + "data:\n  a: b\n  a: c\n", wantErr: `key "a" already set`},
		{name: "wrong type", doc: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: 3\n", wantErr: "cannot unmarshal"},
		{name: "unknown kind", doc: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", wantErr: `unexpected apiVersion "v1" kind "Secret"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeManifest([]byte(tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCheckPodCatches breaks one invariant at a time in a valid example
// and checks that checkPod notices.
func TestCheckPodCatches(t *testing.T) {
	configs := readConfigs(t)
	agent := func(s *corev1.PodSpec) *corev1.Container {
		for i := range s.InitContainers {
			if strings.HasPrefix(s.InitContainers[i].Image, agentImage) {
				return &s.InitContainers[i]
			}
		}
		for i := range s.Containers {
			if strings.HasPrefix(s.Containers[i].Image, agentImage) {
				return &s.Containers[i]
			}
		}
		t.Fatal("no agent container")
		return nil
	}
	volume := func(s *corev1.PodSpec, name string) *corev1.Volume {
		for i := range s.Volumes {
			if s.Volumes[i].Name == name {
				return &s.Volumes[i]
			}
		}
		t.Fatalf("no volume %q", name)
		return nil
	}
	app := func(s *corev1.PodSpec) *corev1.Container {
		for i := range s.Containers {
			if s.Containers[i].Name == "app" {
				return &s.Containers[i]
			}
		}
		t.Fatal("no app container")
		return nil
	}
	tests := []struct {
		name   string
		file   string
		break_ func(s *corev1.PodSpec)
		want   string
	}{
		{"liveness on another port", "sidecar.yaml", func(s *corev1.PodSpec) { agent(s).LivenessProbe.HTTPGet.Port = intstr.FromInt32(9090) }, "liveness probe port"},
		{"named port renumbered", "sidecar.yaml", func(s *corev1.PodSpec) { agent(s).Ports[0].ContainerPort = 8080 }, "is not the health port 8081"},
		{"readiness on the liveness path", "sidecar.yaml", func(s *corev1.PodSpec) { agent(s).ReadinessProbe.HTTPGet.Path = "/live" }, "readiness probe path"},
		{"no readiness probe", "sidecar-helper-conf.yaml", func(s *corev1.PodSpec) { agent(s).ReadinessProbe = nil }, "no httpGet readiness probe"},
		{"native sidecar without startup probe", "native-sidecar.yaml", func(s *corev1.PodSpec) { agent(s).StartupProbe = nil }, "no httpGet startup probe"},
		{"native sidecar without restartPolicy", "native-sidecar.yaml", func(s *corev1.PodSpec) { agent(s).RestartPolicy = nil }, "must run `fetch`"},
		{"probes on a one-shot", "init-oneshot.yaml", func(s *corev1.PodSpec) { agent(s).LivenessProbe = &corev1.Probe{} }, "remove its probes"},
		{"disk-backed credentials", "sidecar.yaml", func(s *corev1.PodSpec) { volume(s, "svid").EmptyDir.Medium = "" }, "is not medium: Memory"},
		{"app writes credentials", "sidecar.yaml", func(s *corev1.PodSpec) { app(s).VolumeMounts[0].ReadOnly = false }, "mounts the credentials volume"},
		{"hostPath socket", "sidecar.yaml", func(s *corev1.PodSpec) {
			volume(s, "spiffe-workload-api").VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/run/spire"}}
		}, "not on a CSI volume"},
		{"writable CSI volume", "native-sidecar.yaml", func(s *corev1.PodSpec) { *volume(s, "spiffe-workload-api").CSI.ReadOnly = false }, "SPIFFE CSI volume is not readOnly"},
		{"capabilities kept", "sidecar.yaml", func(s *corev1.PodSpec) { agent(s).SecurityContext.Capabilities.Drop = nil }, "do not drop ALL"},
		{"writable root", "init-oneshot.yaml", func(s *corev1.PodSpec) { app(s).SecurityContext.ReadOnlyRootFilesystem = nil }, "readOnlyRootFilesystem"},
		{"no seccomp", "sidecar.yaml", func(s *corev1.PodSpec) {
			agent(s).SecurityContext.SeccompProfile = nil
			s.SecurityContext.SeccompProfile = nil
		}, "seccompProfile"},
		{"root allowed", "sidecar.yaml", func(s *corev1.PodSpec) {
			agent(s).SecurityContext.RunAsNonRoot = nil
			s.SecurityContext.RunAsNonRoot = nil
		}, "runAsNonRoot"},
		{"escalation allowed", "sidecar.yaml", func(s *corev1.PodSpec) { agent(s).SecurityContext.AllowPrivilegeEscalation = nil }, "allowPrivilegeEscalation"},
		{"oversized memory request", "sidecar.yaml", func(s *corev1.PodSpec) {
			agent(s).Resources.Requests[corev1.ResourceMemory] = resource.MustParse("512Mi")
		}, "memory request 512Mi"},
		{"service account token", "sidecar.yaml", func(s *corev1.PodSpec) { s.AutomountServiceAccountToken = nil }, "automountServiceAccountToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifest(t, tt.file)
			if _, problems := checkPod(m.pods[0], m.configMaps, configs); len(problems) != 0 {
				t.Fatalf("the unbroken example has problems: %v", problems)
			}
			tt.break_(m.pods[0])
			_, problems := checkPod(m.pods[0], m.configMaps, configs)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("problems %q, want one containing %q", problems, tt.want)
			}
		})
	}
}

// TestConfigMapDrift checks that a ConfigMap which no longer mirrors its
// config/ file is reported.
func TestConfigMapDrift(t *testing.T) {
	configs := readConfigs(t)
	configs["agent.hcl"] += "# edited\n"
	m := loadManifest(t, "sidecar.yaml")
	_, problems := checkPod(m.pods[0], m.configMaps, configs)
	want := "differs from config/agent.hcl"
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
		t.Fatalf("problems %q, want one containing %q", problems, want)
	}
}
