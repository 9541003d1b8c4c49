package wasmrt_test

import (
	"context"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
)

// Guests are compiled once per test binary, from testdata/guests, into
// guestDir; modules compile once into the shared cacheDir.
var (
	guestDir string
	cacheDir string
)

// guests maps a guest to whether it is built as a reactor (c-shared).
var guests = map[string]bool{
	"notifier":    true,
	"nomarker":    true,
	"wrongmarker": true,
	"nocall":      true,
	"command":     false,
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wasmrt-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	guestDir, cacheDir = filepath.Join(dir, "guests"), filepath.Join(dir, "cache")
	if err := buildGuests(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func buildGuests() error {
	goBin := goCommand()
	for name, reactor := range guests {
		args := []string{"build"}
		if reactor {
			args = append(args, "-buildmode=c-shared")
		}
		args = append(args, "-o", filepath.Join(guestDir, name+".wasm"), "./testdata/guests/"+name)
		cmd := exec.Command(goBin, args...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building guest %s: %v\n%s", name, err, out)
		}
	}
	return nil
}

func guestPath(name string) string { return filepath.Join(guestDir, name+".wasm") }

// syncBuffer is the log sink, with find.
type syncBuffer struct{ testkit.Buffer }

// find returns the first record whose msg is msg.
func (s *syncBuffer) find(t testing.TB, msg string) map[string]any {
	t.Helper()
	for _, r := range s.Records(t) {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// config returns a Config for guest name, pinned to its sha256.
func config(t testing.TB, name string) (wasmrt.Config, *syncBuffer) {
	t.Helper()
	sum, err := wasmrt.HashFile(guestPath(name))
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	return wasmrt.Config{
		Path:     guestPath(name),
		SHA256:   sum,
		Kind:     hostapi.KindNotifier,
		Name:     "test-" + name,
		Logger:   slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		CacheDir: cacheDir,
	}, buf
}

// open opens cfg, describes and configures the plugin with config value v.
func open(t testing.TB, cfg wasmrt.Config, v string) *wasmrt.Plugin {
	t.Helper()
	ctx := context.Background()
	p, err := wasmrt.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	d := &pluginv1.DescribeResponse{}
	if err := p.Invoke(ctx, adapter.MethodDescribe, &pluginv1.DescribeRequest{HostServices: p.HostServices()}, d); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if d.GetName() != "test-notifier" {
		t.Fatalf("Describe name = %q", d.GetName())
	}
	if err := p.Invoke(ctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(v)}, &pluginv1.ConfigureResponse{}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func notify(ctx context.Context, p *wasmrt.Plugin, name string) error {
	return p.Invoke(ctx, adapter.MethodNotify, &notifierv1.NotifyRequest{Name: name}, &notifierv1.NotifyResponse{})
}

// goCommand is the go command on PATH.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
