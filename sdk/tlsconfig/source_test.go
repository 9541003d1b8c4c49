package tlsconfig_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/files"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

func TestLoadLayouts(t *testing.T) {
	caA, caB := testca.New(t, tdA), testca.New(t, tdB)
	inter := caA.ChildCA(t)
	id := spiffeid.RequireFromPath(tdA, "/web")
	tests := []struct {
		name      string
		layout    string
		mod       func(*files.Config)
		opts      []tlsconfig.Option
		ca        *testca.CA
		federated bool // whether tdB's bundle must be served
		after     func(t *testing.T, dir string)
	}{
		{name: "flat", layout: files.LayoutFlat, ca: caA},
		{name: "flat with intermediate", layout: files.LayoutFlat, ca: inter},
		{name: "flat per trust domain", layout: files.LayoutFlat, ca: caA, federated: true,
			mod: func(c *files.Config) { c.BundlePerTrustDomain = true }},
		{name: "flat federated pooled and per trust domain", layout: files.LayoutFlat, ca: caA, federated: true,
			mod: func(c *files.Config) { c.BundlePerTrustDomain, c.IncludeFederatedDomains = true, true }},
		{name: "flat custom names", layout: files.LayoutFlat, ca: caA,
			mod: func(c *files.Config) {
				c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName = "c.pem", "k.pem", "b.pem"
			},
			opts: []tlsconfig.Option{tlsconfig.WithFileNames("c.pem", "k.pem", "b.pem"), tlsconfig.WithLayout(tlsconfig.LayoutSPIFFEHelper)}},
		{name: "flat pooled bundle file, federated authorities taken out", layout: files.LayoutFlat, ca: caA, federated: true,
			mod: func(c *files.Config) { c.BundlePerTrustDomain, c.IncludeFederatedDomains = true, true },
			after: func(t *testing.T, dir string) {
				// Only svid_bundle.pem (a.example's and b.example's
				// authorities) and b.example.bundle.pem remain.
				if err := os.Remove(filepath.Join(dir, "a.example.bundle.pem")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "data", layout: files.LayoutData, ca: caA, federated: true,
			mod: func(c *files.Config) { c.BundlePerTrustDomain = true }},
		{name: "spiffe-fs", layout: files.LayoutSPIFFEFS, ca: caA, federated: true},
		{name: "spiffe-fs with intermediate", layout: files.LayoutSPIFFEFS, ca: inter, federated: true},
		{name: "spiffe-fs explicit", layout: files.LayoutSPIFFEFS, ca: caA, federated: true,
			opts: []tlsconfig.Option{tlsconfig.WithLayout(tlsconfig.LayoutSPIFFEFS)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := []func(*files.Config){}
			if tt.mod != nil {
				mod = append(mod, tt.mod)
			}
			svid := tt.ca.X509SVID(t, id)
			write(t, newWriter(t, dir, tt.layout, mod...), svid, caA.X509Bundle(), caB.X509Bundle())
			if tt.after != nil {
				tt.after(t, dir)
			}

			src := newSource(t, append([]tlsconfig.Option{tlsconfig.WithDir(dir)}, tt.opts...)...)
			got, err := src.GetX509SVID()
			if err != nil {
				t.Fatalf("GetX509SVID: %v", err)
			}
			if got.ID != id {
				t.Errorf("ID = %s, want %s", got.ID, id)
			}
			if !got.Certificates[0].Equal(svid.Certificates[0]) {
				t.Errorf("leaf serial = %x, want %x", got.Certificates[0].SerialNumber, svid.Certificates[0].SerialNumber)
			}
			if len(got.Certificates) != len(svid.Certificates) {
				t.Errorf("chain length = %d, want %d", len(got.Certificates), len(svid.Certificates))
			}
			a, err := src.GetX509BundleForTrustDomain(tdA)
			if err != nil {
				t.Fatalf("bundle of %s: %v", tdA, err)
			}
			if want := caA.X509Bundle(); !a.Equal(want) {
				t.Errorf("bundle of %s has %d authorities, want exactly the root (not pooled with %s)", tdA, len(a.X509Authorities()), tdB)
			}
			b, err := src.GetX509BundleForTrustDomain(tdB)
			if tt.federated {
				if err != nil {
					t.Fatalf("bundle of %s: %v", tdB, err)
				}
				if !b.Equal(caB.X509Bundle()) {
					t.Errorf("bundle of %s is not its own root only", tdB)
				}
			} else if err == nil {
				t.Errorf("bundle of %s served although no file holds it alone", tdB)
			}
			if err := src.Err(); err != nil {
				t.Errorf("Err = %v, want nil", err)
			}
		})
	}
}

func TestCredentialFolderFromEnvironment(t *testing.T) {
	ca := testca.New(t, tdA)
	dir := t.TempDir()
	svid := ca.X509SVID(t, spiffeid.RequireFromPath(tdA, "/env"))
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), svid, ca.X509Bundle())
	t.Setenv(tlsconfig.EnvCredentialFolder, dir)

	src := newSource(t) // no WithDir
	got, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != svid.ID {
		t.Errorf("ID = %s, want %s", got.ID, svid.ID)
	}
}

func TestNewSourceErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		opts    []tlsconfig.Option
		wantErr string
	}{
		{name: "no folder", wantErr: "pass WithDir or set SPIFFE_CREDENTIAL_FOLDER"},
		{name: "bad layout", opts: []tlsconfig.Option{tlsconfig.WithDir("/x"), tlsconfig.WithLayout(9)}, wantErr: "unknown layout 9"},
		{name: "bad file name", opts: []tlsconfig.Option{tlsconfig.WithDir("/x"), tlsconfig.WithFileNames("a/b", "k", "b")}, wantErr: `SVID file name "a/b" is not a plain file name`},
		{name: "negative debounce", opts: []tlsconfig.Option{tlsconfig.WithDir("/x"), tlsconfig.WithDebounce(-1)}, wantErr: "debounce -1ns is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tlsconfig.EnvCredentialFolder, tt.env)
			src, err := tlsconfig.NewSource(context.Background(), tt.opts...)
			if err == nil {
				_ = src.Close()
				t.Fatal("NewSource succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewSourceWaitsBoundedByContext(t *testing.T) {
	dir := t.TempDir() // empty: nothing to load
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := tlsconfig.NewSource(ctx, tlsconfig.WithDir(dir))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "reading the SVID") {
		t.Errorf("error = %q, want the last load error in it", err)
	}
}

func TestNewSourceWaitsForTheFolder(t *testing.T) {
	ca := testca.New(t, tdA)
	dir := filepath.Join(t.TempDir(), "later")
	type result struct {
		src *tlsconfig.Source
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		src, err := tlsconfig.NewSource(ctx, tlsconfig.WithDir(dir), tlsconfig.WithDebounce(10*time.Millisecond))
		ch <- result{src, err}
	}()
	svid := ca.X509SVID(t, spiffeid.RequireFromPath(tdA, "/late"))
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), svid, ca.X509Bundle())
	r := <-ch
	if r.err != nil {
		t.Fatalf("NewSource: %v", r.err)
	}
	defer r.src.Close()
	if !serialIs(r.src, svid.Certificates[0].SerialNumber)() {
		t.Error("Source does not serve the SVID written after it started")
	}
}

func TestFolderRemovedAndRecreated(t *testing.T) {
	ca := testca.New(t, tdA)
	dir := filepath.Join(t.TempDir(), "creds")
	id := spiffeid.RequireFromPath(tdA, "/web")
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), ca.X509SVID(t, id), ca.X509Bundle())
	src := newSource(t, tlsconfig.WithDir(dir))

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// Removal fails reloads; the old credentials stay.
	deadline := time.Now().Add(10 * time.Second)
	for src.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Err stayed nil after the folder was removed")
		}
		time.Sleep(5 * time.Millisecond) // polling: a failed reload signals nothing
	}
	if _, err := src.GetX509SVID(); err != nil {
		t.Fatalf("GetX509SVID after removal: %v (want the previous SVID)", err)
	}

	next := ca.X509SVID(t, id)
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), next, ca.X509Bundle())
	waitUntil(t, src, "the re-created folder is loaded", serialIs(src, next.Certificates[0].SerialNumber))

	// And the new folder is watched: a further rotation is seen.
	third := ca.X509SVID(t, id)
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), third, ca.X509Bundle())
	waitUntil(t, src, "a rotation in the re-created folder is loaded", serialIs(src, third.Certificates[0].SerialNumber))
}

func TestFlatLayoutKeepsMatchingPair(t *testing.T) {
	ca := testca.New(t, tdA)
	dir := t.TempDir()
	id := spiffeid.RequireFromPath(tdA, "/web")
	old := ca.X509SVID(t, id)
	write(t, newWriter(t, dir, files.LayoutFlat), old, ca.X509Bundle())
	src := newSource(t, tlsconfig.WithDir(dir))

	srv := startServer(t, tlsconfig.ServerConfig(src, tlsconfig.AuthorizeID(id)))
	cli := tlsconfig.ClientConfig(src, tlsconfig.AuthorizeID(id))

	// A reader's view between the writer's two renames: the new
	// certificate with the old key.
	next := ca.X509SVID(t, id)
	certPEM, keyPEM, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(dir, "svid.pem"), certPEM)
	deadline := time.Now().Add(10 * time.Second)
	for src.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a mismatched cert and key did not fail the reload")
		}
		time.Sleep(5 * time.Millisecond) // polling: a failed reload signals nothing
	}
	if !strings.Contains(src.Err().Error(), "does not match") {
		t.Errorf("Err = %v, want a key mismatch", src.Err())
	}
	if !serialIs(src, old.Certificates[0].SerialNumber)() {
		t.Fatal("Source dropped the old pair on a mismatched read")
	}
	serial, err := dial(srv.addr(), cli)
	if err != nil {
		t.Fatalf("handshake during the mismatch: %v", err)
	}
	if serial.Cmp(old.Certificates[0].SerialNumber) != 0 {
		t.Errorf("server presented %x during the mismatch, want the old %x", serial, old.Certificates[0].SerialNumber)
	}

	replace(t, filepath.Join(dir, "svid_key.pem"), keyPEM)
	waitUntil(t, src, "the matching pair is loaded", serialIs(src, next.Certificates[0].SerialNumber))
	if err := src.Err(); err != nil {
		t.Errorf("Err = %v after the matching pair, want nil", err)
	}
	serial, err = dial(srv.addr(), cli)
	if err != nil {
		t.Fatalf("handshake after the rotation: %v", err)
	}
	if serial.Cmp(next.Certificates[0].SerialNumber) != 0 {
		t.Errorf("server presented %x, want the new %x", serial, next.Certificates[0].SerialNumber)
	}
}

// replace replaces path atomically, as the writer does.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestRejectsInvalidCredentialBundle(t *testing.T) {
	ca := testca.New(t, tdA)
	id := spiffeid.RequireFromPath(tdA, "/web")
	good := ca.X509SVID(t, id)
	certPEM, keyPEM, _ := good.Marshal()
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "empty", data: nil, wantErr: "it is empty"},
		{name: "cert first", data: append(append([]byte{}, certPEM...), keyPEM...), wantErr: `want "PRIVATE KEY"`},
		{name: "key only", data: keyPEM, wantErr: "no certificate"},
		{name: "truncated", data: append(append([]byte{}, keyPEM...), certPEM[:len(certPEM)/2]...), wantErr: "byte 241: PEM block has no END line"},
		{name: "other key", data: append(mustKey(t, ca.X509SVID(t, id)), certPEM...), wantErr: "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, newWriter(t, dir, files.LayoutSPIFFEFS), good, ca.X509Bundle())
			src := newSource(t, tlsconfig.WithDir(dir))
			replace(t, filepath.Join(dir, tlsconfig.CredentialBundleName), tt.data)
			deadline := time.Now().Add(10 * time.Second)
			for src.Err() == nil {
				if time.Now().After(deadline) {
					t.Fatal("the invalid credential bundle did not fail the reload")
				}
				time.Sleep(5 * time.Millisecond) // polling: a failed reload signals nothing
			}
			if !strings.Contains(src.Err().Error(), tt.wantErr) {
				t.Errorf("Err = %v, want it to contain %q", src.Err(), tt.wantErr)
			}
			if !serialIs(src, good.Certificates[0].SerialNumber)() {
				t.Error("the previous SVID was dropped")
			}
		})
	}
}

func mustKey(t *testing.T, s *x509svid.SVID) []byte {
	t.Helper()
	_, key, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestCloseStopsTheWatcher(t *testing.T) {
	ca := testca.New(t, tdA)
	dir := t.TempDir()
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), ca.X509SVID(t, spiffeid.RequireFromPath(tdA, "/web")), ca.X509Bundle())
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := tlsconfig.NewSource(ctx, tlsconfig.WithDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.NumGoroutine() <= before {
		t.Fatal("no goroutine started; the leak check below would prove nothing")
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := src.GetX509SVID(); !errors.Is(err, tlsconfig.ErrClosed) {
		t.Errorf("GetX509SVID after Close: %v, want ErrClosed", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(tdA); !errors.Is(err, tlsconfig.ErrClosed) {
		t.Errorf("GetX509BundleForTrustDomain after Close: %v, want ErrClosed", err)
	}
	// Close waited for the Source's goroutine; fsnotify's reader
	// goroutine exits on its own once its file is closed.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond) // polling: no event for another package's goroutine exiting
	}
}

// TestHammer reads the Source from many goroutines while the writer
// rotates, under -race.
func TestHammer(t *testing.T) {
	ca := testca.New(t, tdA)
	caB := testca.New(t, tdB)
	dir := t.TempDir()
	id := spiffeid.RequireFromPath(tdA, "/web")
	w := newWriter(t, dir, files.LayoutData, func(c *files.Config) { c.BundlePerTrustDomain = true })
	write(t, w, ca.X509SVID(t, id), ca.X509Bundle(), caB.X509Bundle())
	src := newSource(t, tlsconfig.WithDir(dir), tlsconfig.WithDebounce(0))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := src.GetX509SVID()
				if err == nil && s.ID != id {
					err = errors.New("wrong ID " + s.ID.String())
				}
				if err == nil {
					_, err = src.GetX509BundleForTrustDomain(tdA)
				}
				_ = src.Err()
				_ = src.TrustDomains()
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	var last *x509svid.SVID
	for range 30 {
		last = ca.X509SVID(t, id)
		write(t, w, last, ca.X509Bundle(), caB.X509Bundle())
	}
	waitUntil(t, src, "the last rotation is loaded", serialIs(src, last.Certificates[0].SerialNumber))
	close(stop)
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
}
