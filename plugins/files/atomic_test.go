package files_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/files"
)

// TestModes checks that every file gets exactly its configured mode
// whatever the umask, that the staged file already has it when it is
// renamed into place, and that a later Write re-applies it after someone
// else changed it. It changes the process umask, so it does not run in
// parallel.
func TestModes(t *testing.T) {
	p := newPKI(t)
	for _, layout := range []string{files.LayoutFlat, files.LayoutData, files.LayoutSPIFFEFS} {
		for _, umask := range []int{0, 0o022, 0o077} {
			for _, modes := range []struct{ cert, key, jwt uint32 }{
				{0o644, 0o600, 0o600},
				{0o666, 0o640, 0o644},
				{0o444, 0o400, 0o440},
			} {
				name := fmt.Sprintf("%s/umask=%03o/cert=%03o,key=%03o,jwt=%03o", layout, umask, modes.cert, modes.key, modes.jwt)
				t.Run(name, func(t *testing.T) {
					old := syscall.Umask(umask)
					defer syscall.Umask(old)

					cfg := files.DefaultConfig()
					cfg.Dir = t.TempDir()
					cfg.Layout = layout
					cfg.CertFileMode, cfg.KeyFileMode = modes.cert, modes.key
					cfg.JWTSVIDFileMode, cfg.JWTBundleFileMode = modes.jwt, modes.jwt
					cfg.JWTBundleFileName = "jwt_bundle.json"
					cfg.CombinedFileName = "combined.pem"
					w, err := files.New(cfg, nil)
					if err != nil {
						t.Fatal(err)
					}
					want := map[string]fs.FileMode{
						"jwt_svid.token":  fs.FileMode(modes.jwt),
						"jwt_bundle.json": fs.FileMode(modes.jwt),
					}
					if layout == files.LayoutSPIFFEFS {
						want[files.CredentialBundleName] = fs.FileMode(modes.key)
						want["example.org"+files.TrustBundleSuffix] = fs.FileMode(modes.cert)
					} else {
						want["svid.pem"] = fs.FileMode(modes.cert)
						want["svid_bundle.pem"] = fs.FileMode(modes.cert)
						want["svid_key.pem"] = fs.FileMode(modes.key)
						want["combined.pem"] = fs.FileMode(modes.key)
					}
					// The staged file must have its final mode before it
					// replaces the target (flat and spiffe-fs stage files).
					var staged []string
					files.SetRename(w, func(oldpath, newpath string) error {
						if fi, err := os.Lstat(oldpath); err == nil && fi.Mode().IsRegular() {
							if m, ok := want[filepath.Base(newpath)]; ok && fi.Mode().Perm() != m {
								staged = append(staged, fmt.Sprintf("%s staged with %v, want %v", newpath, fi.Mode().Perm(), m))
							}
						}
						return os.Rename(oldpath, newpath)
					})
					check := func() {
						t.Helper()
						for name, m := range want {
							fi, err := os.Stat(filepath.Join(cfg.Dir, name)) // follows the data layout's links
							if err != nil {
								t.Fatal(err)
							}
							if fi.Mode().Perm() != m {
								t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), m)
							}
						}
					}
					if _, err := w.Write(context.Background(), p.set(t)); err != nil {
						t.Fatal(err)
					}
					check()
					for name := range want {
						if err := os.Chmod(filepath.Join(cfg.Dir, name), 0o666); err != nil {
							t.Fatal(err)
						}
					}
					if _, err := w.Write(context.Background(), p.set(t)); err != nil {
						t.Fatal(err)
					}
					check()
					for _, s := range staged {
						t.Error(s)
					}
				})
			}
		}
	}
}

// errInjected is the failure the tests inject into a commit's renames.
var errInjected = errors.New("injected rename failure")

// TestFailedWriteLeavesPreviousFiles fails the n-th rename of a Write, for
// every n, and checks that the directory is byte-for-byte as the previous
// successful Write left it, with no temporary or backup file.
func TestFailedWriteLeavesPreviousFiles(t *testing.T) {
	p := newPKI(t)
	for _, layout := range []string{files.LayoutFlat, files.LayoutData, files.LayoutSPIFFEFS} {
		t.Run(layout, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Layout = layout
			cfg.JWTBundleFileName = "jwt_bundle.json"
			cfg.CombinedFileName = "combined.pem"
			cfg.BundlePerTrustDomain = true

			// first and next are the two sets written; in spiffe-fs next
			// also de-federates other.org, which must come back on failure.
			first := func() *hostapi.CredentialSet { return p.set(t) }
			next := func() *hostapi.CredentialSet {
				s := p.set(t)
				if layout == files.LayoutSPIFFEFS {
					s.X509Bundles = x509bundle.NewSet(p.root.X509Bundle())
				}
				return s
			}

			// Count the renames of a successful second Write.
			probe := *cfg
			probe.Dir = t.TempDir()
			pw, err := files.New(&probe, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pw.Write(context.Background(), first()); err != nil {
				t.Fatal(err)
			}
			renames := 0
			files.SetRename(pw, func(o, n string) error { renames++; return os.Rename(o, n) })
			if _, err := pw.Write(context.Background(), next()); err != nil {
				t.Fatal(err)
			}
			if renames == 0 {
				t.Fatal("a Write did no rename")
			}
			if _, err := os.Stat(filepath.Join(probe.Dir, "other.org"+files.TrustBundleSuffix)); layout == files.LayoutSPIFFEFS && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("de-federated trust bundle still present: %v", err)
			}

			for fail := 1; fail <= renames; fail++ {
				t.Run(fmt.Sprintf("rename %d of %d fails", fail, renames), func(t *testing.T) {
					c := *cfg
					c.Dir = t.TempDir()
					w, err := files.New(&c, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.Write(context.Background(), first()); err != nil {
						t.Fatal(err)
					}
					before := snapshot(t, c.Dir)

					n := 0
					files.SetRename(w, func(o, nw string) error {
						n++
						if n == fail {
							return errInjected
						}
						return os.Rename(o, nw)
					})
					if _, err := w.Write(context.Background(), next()); !errors.Is(err, errInjected) {
						t.Fatalf("Write error = %v, want the injected failure", err)
					}
					requireUnchanged(t, c.Dir, before)
				})
			}
		})
	}
}

// TestTargetIsDirectory forces a real failure, one root cannot bypass: a
// target name that is a directory. Nothing changes.
func TestTargetIsDirectory(t *testing.T) {
	p := newPKI(t)
	for _, layout := range []string{files.LayoutFlat, files.LayoutData} {
		t.Run(layout, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Dir = t.TempDir()
			cfg.Layout = layout
			w, err := files.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(context.Background(), p.set(t)); err != nil {
				t.Fatal(err)
			}
			cfg2 := *cfg
			cfg2.CombinedFileName = "combined.pem" // written last: after svid, key, bundle
			if err := os.Mkdir(filepath.Join(cfg.Dir, "combined.pem"), 0o755); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, cfg.Dir)
			w2, err := files.New(&cfg2, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w2.Write(context.Background(), p.set(t))
			if err == nil || !strings.Contains(err.Error(), "directory") {
				t.Fatalf("Write error = %v, want one about a directory", err)
			}
			if after := snapshot(t, cfg.Dir); !maps.Equal(before, after) {
				t.Errorf("the directory changed after a failed Write:\nbefore %v\nafter  %v", keys(before), keys(after))
			}
		})
	}
}

// TestRealRenameFailure makes a rename fail for real, past the pre-checks:
// the JWT token's name is a non-empty directory created after the
// staging... which rename(2) refuses with EISDIR. The hook only creates
// the directory, the failure is the kernel's.
func TestRealRenameFailure(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := p.set(t)
	first.JWTSVIDs = nil
	if _, err := w.Write(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, cfg.Dir)
	files.SetRename(w, func(o, n string) error {
		if filepath.Base(n) == "jwt_svid.token" {
			if err := os.MkdirAll(filepath.Join(n, "x"), 0o755); err != nil {
				return err
			}
			defer os.RemoveAll(n)
		}
		return os.Rename(o, n)
	})
	_, err = w.Write(context.Background(), p.set(t))
	if !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("Write error = %v, want the kernel's rename failure", err)
	}
	if after := snapshot(t, cfg.Dir); !maps.Equal(before, after) {
		t.Errorf("the directory changed after a failed Write:\nbefore %v\nafter  %v", keys(before), keys(after))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// errSyncInjected is the failure the tests inject into a Write's fsyncs.
var errSyncInjected = errors.New("injected fsync failure")

// syncLabel names the file or directory a Write fsyncs, relative to dir,
// with the random parts of transient and version names replaced, so that
// two Writes of the same set give the same labels: the temporary file of
// svid.pem is "svid.pem.TMP", svid.pem in a new version directory
// "VERSION/svid.pem".
func syncLabel(dir, path string) string {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return path
	}
	rel = tmpName.ReplaceAllString(rel, "$1.TMP")
	return versionName.ReplaceAllString(rel, "VERSION")
}

var (
	tmpName     = regexp.MustCompile(`\.([^/]+)\.[0-9a-f]{12}\.svidagent-tmp$`)
	versionName = regexp.MustCompile(`^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+`)
)

// fsLog records, in order, the fsyncs and renames of a Write. Fsyncs run
// concurrently, hence the lock.
type fsLog struct {
	mu     sync.Mutex
	events []string // "sync <label>" or "rename <label> <label>"
}

func (l *fsLog) add(ev string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

// record makes w log its fsyncs and renames (which it still performs) to l.
func (l *fsLog) record(w *files.Writer, dir string) {
	files.SetSync(w, func(f *os.File) error {
		l.add("sync " + syncLabel(dir, f.Name()))
		return f.Sync()
	})
	files.SetRename(w, func(o, n string) error {
		l.add("rename " + syncLabel(dir, o) + " " + syncLabel(dir, n))
		return os.Rename(o, n)
	})
}

// secondWriteLog writes p's set twice with a writer for a copy of cfg in
// a new directory, and returns the fsyncs and renames of the second Write.
func secondWriteLog(t *testing.T, cfg *files.Config, p *pki) *fsLog {
	t.Helper()
	c := *cfg
	c.Dir = t.TempDir()
	w, err := files.New(&c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(context.Background(), p.set(t)); err != nil {
		t.Fatal(err)
	}
	l := &fsLog{}
	l.record(w, c.Dir)
	if _, err := w.Write(context.Background(), p.set(t)); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSyncOrder checks the durability order of a Write, from its fsyncs
// and renames: every new file (and, in the data layout, the new version
// directory) is fsynced before the first rename that exposes it, and
// every directory a rename changed is fsynced after the last rename, so
// that when Write returns the new files are durable and a crash at any
// point leaves each file complete, old or new.
func TestSyncOrder(t *testing.T) {
	p := newPKI(t)
	for _, layout := range []string{files.LayoutFlat, files.LayoutData, files.LayoutSPIFFEFS} {
		t.Run(layout, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Layout = layout
			cfg.CombinedFileName = "combined.pem"
			l := secondWriteLog(t, cfg, p)
			firstRename, lastRename := -1, -1
			synced := map[string]int{} // label -> index of its fsync
			for i, ev := range l.events {
				if strings.HasPrefix(ev, "rename ") {
					if firstRename < 0 {
						firstRename = i
					}
					lastRename = i
				} else {
					synced[strings.TrimPrefix(ev, "sync ")] = i
				}
			}
			if firstRename < 0 {
				t.Fatalf("no rename in %q", l.events)
			}
			var before []string // what must be durable before the first rename
			switch layout {
			case files.LayoutData:
				before = []string{"VERSION", "VERSION/svid.pem", "VERSION/svid_key.pem", "VERSION/svid_bundle.pem", "VERSION/combined.pem", "VERSION/jwt_svid.token"}
			case files.LayoutFlat:
				before = []string{"svid.pem.TMP", "svid_key.pem.TMP", "svid_bundle.pem.TMP", "combined.pem.TMP", "jwt_svid.token.TMP"}
			case files.LayoutSPIFFEFS:
				before = []string{files.CredentialBundleName + ".TMP", "example.org" + files.TrustBundleSuffix + ".TMP", "other.org" + files.TrustBundleSuffix + ".TMP", "jwt_svid.token.TMP"}
			}
			for _, label := range before {
				if i, ok := synced[label]; !ok || i > firstRename {
					t.Errorf("%s: fsynced at event %d (found %v), want before the first rename at %d; events %q", label, i, ok, firstRename, l.events)
				}
			}
			if i, ok := synced["."]; !ok || i < lastRename {
				t.Errorf("the directory: fsynced at event %d (found %v), want after the last rename at %d; events %q", i, ok, lastRename, l.events)
			}
		})
	}
}

// TestFailedSyncLeavesPreviousFiles fails each fsync of a Write in turn
// (files and directories; they run concurrently, so each is picked by
// name, not by position) and checks that the Write reports it and that
// the directory is byte-for-byte as the previous Write left it, with no
// temporary or backup file: a failed fsync of one file rolls back all.
func TestFailedSyncLeavesPreviousFiles(t *testing.T) {
	p := newPKI(t)
	for _, layout := range []string{files.LayoutFlat, files.LayoutData, files.LayoutSPIFFEFS} {
		t.Run(layout, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Layout = layout
			cfg.JWTBundleFileName = "jwt_bundle.json"
			cfg.CombinedFileName = "combined.pem"

			// The fsyncs of a successful second Write.
			l := secondWriteLog(t, cfg, p)
			var labels []string
			for _, ev := range l.events {
				if label, ok := strings.CutPrefix(ev, "sync "); ok {
					labels = append(labels, label)
				}
			}
			if len(labels) < 3 {
				t.Fatalf("a Write did only these fsyncs: %q", labels)
			}

			for _, fail := range labels {
				t.Run(fail, func(t *testing.T) {
					c := *cfg
					c.Dir = t.TempDir()
					w, err := files.New(&c, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.Write(context.Background(), p.set(t)); err != nil {
						t.Fatal(err)
					}
					before := snapshot(t, c.Dir)

					// Only the first fsync of the label fails: a rollback
					// may fsync the same directory again.
					var failed atomic.Int32
					files.SetSync(w, func(f *os.File) error {
						if syncLabel(c.Dir, f.Name()) == fail && failed.Add(1) == 1 {
							return errSyncInjected
						}
						return f.Sync()
					})
					if _, err := w.Write(context.Background(), p.set(t)); !errors.Is(err, errSyncInjected) {
						t.Fatalf("Write error = %v, want the injected failure", err)
					}
					if n := failed.Load(); n < 1 {
						t.Errorf("the fsync of %s was never attempted", fail)
					}
					requireUnchanged(t, c.Dir, before)

					// The writer is not stuck: the next Write succeeds.
					files.SetSync(w, (*os.File).Sync)
					if _, err := w.Write(context.Background(), p.set(t)); err != nil {
						t.Fatalf("Write after the failed one: %v", err)
					}
				})
			}
		})
	}
}

// TestFailedFirstWriteSync fails the last fsync of a first Write in the
// data layout, the one after "..data" was created: nothing may remain.
func TestFailedFirstWriteSync(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = files.LayoutData
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int32
	files.SetSync(w, func(f *os.File) error {
		if f.Name() == cfg.Dir && failed.Add(1) == 1 {
			return errSyncInjected
		}
		return f.Sync()
	})
	if _, err := w.Write(context.Background(), p.set(t)); !errors.Is(err, errSyncInjected) {
		t.Fatalf("Write error = %v, want the injected failure", err)
	}
	if s := snapshot(t, cfg.Dir); len(s) != 1 { // only "."
		t.Errorf("a failed first Write left %v", keys(s))
	}
}

// TestFailedSyncAfterRestoreKeepsVersion: in the data layout, when the
// directory fsync after the swap fails and so does the one after "..data"
// is pointed back, the previous set is what the names show, and the new
// version directory stays (a crash could still find "..data" pointing at
// it); the next Write succeeds and removes it.
func TestFailedSyncAfterRestoreKeepsVersion(t *testing.T) {
	p := newPKI(t)
	cfg := files.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Layout = files.LayoutData
	w, err := files.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(context.Background(), p.set(t)); err != nil {
		t.Fatal(err)
	}
	svid := filepath.Join(cfg.Dir, cfg.SVIDFileName)
	before, err := os.ReadFile(svid)
	if err != nil {
		t.Fatal(err)
	}
	versions := func() []string {
		m, err := filepath.Glob(filepath.Join(cfg.Dir, "..2*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if n := len(versions()); n != 1 {
		t.Fatalf("%d version directories after the first Write, want 1", n)
	}

	var failed atomic.Int32
	files.SetSync(w, func(f *os.File) error {
		if f.Name() == cfg.Dir {
			failed.Add(1)
			return errSyncInjected
		}
		return f.Sync()
	})
	if _, err := w.Write(context.Background(), p.set(t)); !errors.Is(err, errSyncInjected) {
		t.Fatalf("Write error = %v, want the injected failure", err)
	}
	if n := failed.Load(); n != 2 {
		t.Errorf("the directory was fsynced %d times, want 2 (after the swap, after the restore)", n)
	}
	if got, err := os.ReadFile(svid); err != nil || !bytes.Equal(got, before) {
		t.Errorf("%s after the failed Write: %v; want the previous content", svid, err)
	}
	if n := len(versions()); n != 2 {
		t.Errorf("%d version directories after the failed restore fsync, want 2 (the new one kept)", n)
	}

	files.SetSync(w, (*os.File).Sync)
	if _, err := w.Write(context.Background(), p.set(t)); err != nil {
		t.Fatalf("the next Write: %v", err)
	}
	if n := len(versions()); n != 1 {
		t.Errorf("%d version directories after the next Write, want 1", n)
	}
}

// requireUnchanged checks that dir holds exactly the snapshot before, and
// no transient file.
func requireUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("%s changed or appeared", k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("%s disappeared", k)
		}
	}
	if tr := transients(t, dir); len(tr) > 0 {
		t.Errorf("transient files left: %v", tr)
	}
}
