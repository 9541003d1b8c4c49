package wasmrt_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"google.golang.org/grpc/status"
)

// TestWriterSandboxHoldsAgainstLinks is the hostile test of a writer's
// /out: a guest that makes links, follows links someone else left there,
// or walks out with "..", reads and writes nothing outside its grant.
func TestWriterSandboxHoldsAgainstLinks(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// Links the guest did not make: one leading out (to a directory and
	// to a file, relative and absolute) and one staying inside.
	for link, target := range map[string]string{
		"hostdir":   outside,
		"hostfile":  secret,
		"hostrel":   "../" + filepath.Base(outside),
		"innerlink": "cert.pem",
	} {
		if err := os.Symlink(target, filepath.Join(out, link)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := config(t, "notifier")
	cfg.Kind, cfg.WriteDir = hostapi.KindWriter, out
	p := open(t, cfg, `{}`)

	steps := []struct {
		name string
		want string
	}{
		{"write:/out/cert.pem", "write succeeded"},
		// The reported escape: a link to the host's root, then through it.
		{"symlink:../../../../../../../../=/out/rootlink", "symlink failed"},
		{"open:/out/rootlink" + secret, "open failed"},
		{"write:/out/rootlink" + outside + "/planted", "write failed"},
		{"symlink:cert.pem=/out/inner", "symlink failed"},
		{"symlink:/etc/passwd=/out/abs", "symlink failed"},
		{"link:/out/cert.pem=/out/hard", "link failed"},
		// Links someone else left: followed only while they stay inside.
		{"open:/out/hostdir/secret", "open failed"},
		{"open:/out/hostfile", "open failed"},
		{"open:/out/hostrel/secret", "open failed"},
		{"write:/out/hostdir/planted", "write failed"},
		{"write:/out/hostfile", "write failed"},
		{"open:/out/innerlink", "open succeeded: 1 bytes"},
		{"rename:/out/cert.pem=/out/hostdir/stolen", "rename failed"},
		// Paths that leave by name.
		{"open:/out/../" + filepath.Base(out) + "/cert.pem", "open failed"},
		{"write:/out/../planted", "write failed"},
		{"open:" + secret, "open failed"},
		// What a writer needs still works.
		{"mkdir:/out/sub", "mkdir succeeded"},
		{"write:/out/sub/key.pem", "write succeeded"},
		{"rename:/out/sub/key.pem=/out/key.pem", "rename succeeded"},
		{"ls:/out", "ls succeeded: cert.pem,hostdir,hostfile,hostrel,innerlink,key.pem,sub"},
	}
	for _, st := range steps {
		err := notify(context.Background(), p, st.name)
		if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, st.want) {
			t.Errorf("Notify(%q) = %q, want %q", st.name, msg, st.want)
		}
	}
	for _, f := range []string{"planted", "stolen"} {
		if _, err := os.Lstat(filepath.Join(outside, f)); err == nil {
			t.Errorf("the guest wrote %s outside its grant", f)
		}
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(out), "planted")); err == nil {
		t.Error("the guest wrote next to its grant")
	}
	if b, _ := os.ReadFile(secret); string(b) != "s3cret" {
		t.Errorf("the secret outside was changed: %q", b)
	}
	for _, link := range []string{"rootlink", "inner", "abs", "hard"} {
		if _, err := os.Lstat(filepath.Join(out, link)); err == nil {
			t.Errorf("the guest made %s", link)
		}
	}
	// Modes: the guest cannot choose them.
	for name, want := range map[string]os.FileMode{"cert.pem": 0o600, "key.pem": 0o600, "sub": os.ModeDir | 0o700} {
		st, err := os.Lstat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s mode = %v, want %v", name, st.Mode(), want)
		}
	}
}

// TestHostPaths: what a writer's guest reports under /out reaches the
// host as the real path beneath write_dir; anything else is refused.
func TestHostPaths(t *testing.T) {
	out := t.TempDir()
	cfg, _ := config(t, "notifier")
	cfg.Kind, cfg.WriteDir = hostapi.KindWriter, out
	p := open(t, cfg, `{}`)
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "/out/svid.pem", want: filepath.Join(out, "svid.pem")},
		{in: "/out/web/./key.pem", want: filepath.Join(out, "web", "key.pem")},
		{in: "/out/a/../b.pem", want: filepath.Join(out, "b.pem")},
		{in: "/out/../etc/passwd", wantErr: true},
		{in: "/out", wantErr: true},
		{in: "/etc/passwd", wantErr: true},
		{in: "svid.pem", wantErr: true},
		{in: "/outside/x", wantErr: true},
	}
	for _, tt := range tests {
		got, err := p.HostPaths([]string{tt.in})
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "not under /out") {
				t.Errorf("HostPaths(%q) = %v, %v; want an error naming /out", tt.in, got, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != tt.want {
			t.Errorf("HostPaths(%q) = %v, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	cfg, _ = config(t, "notifier")
	n := open(t, cfg, `{}`)
	if _, err := n.HostPaths([]string{"/out/x"}); err == nil {
		t.Error("a plugin without write_dir had a path mapped")
	}
}
