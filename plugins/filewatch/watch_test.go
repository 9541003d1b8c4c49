package filewatch_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// Each way of replacing the files delivers every new valid set exactly
// once, in order: A, B, C with nothing in between or after.
func TestWatchRotation(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) func(pair)
	}{
		{name: "rename over each file", setup: func(t *testing.T, dir string) func(pair) {
			return func(p pair) { writeRenamed(t, dir, p) }
		}},
		{name: "kubernetes ..data swap", setup: func(t *testing.T, dir string) func(pair) {
			w := &atomicWriter{dir: dir}
			return func(p pair) { w.write(t, p) }
		}},
		{name: "rename the directory over", setup: func(t *testing.T, dir string) func(pair) {
			// A whole new directory renamed into place, as some
			// deployment tools do: the watch on the old one is lost.
			return func(p pair) {
				tmp, err := os.MkdirTemp(filepath.Dir(dir), ".next-")
				if err != nil {
					t.Fatal(err)
				}
				writeRenamed(t, tmp, p)
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, dir); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := testca.New(t, td)
			dir := filepath.Join(t.TempDir(), "tls")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			write := tt.setup(t, dir)
			a, b, c := newPair(t, ca), newPair(t, ca), newPair(t, ca)
			write(a)
			rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
			rec.expectNext(a.serial)
			write(b)
			rec.expectNext(b.serial)
			write(c)
			rec.expectNext(c.serial)
			if err := rec.stop(); err != nil {
				t.Fatalf("Watch returned %v after cancel, want nil", err)
			}
			rec.noMoreUpdates()
		})
	}
}

// A CA rotation: new root in the bundle, then a leaf from it. Each
// publication verifies (checked by the recorder).
func TestWatchCARotation(t *testing.T) {
	oldCA, newCA := testca.New(t, td), testca.New(t, td)
	dir := t.TempDir()
	w := &atomicWriter{dir: dir}
	a := newPair(t, oldCA)
	w.write(t, a)
	rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
	rec.expectNext(a.serial)
	b := newPair(t, newCA)
	b.bundle = append(append([]byte{}, a.bundle...), b.bundle...)
	w.write(t, b)
	rec.expectNext(b.serial)
	rec.stop()
	rec.noMoreUpdates()
}

// A burst of rotations inside the debounce period is read once: only the
// last set is published.
func TestWatchDebounce(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	w := &atomicWriter{dir: dir}
	first := newPair(t, ca)
	w.write(t, first)
	rec := startWatch(t, newIssuer(t, dir, "500ms"), nil)
	rec.expectNext(first.serial)
	burst := make([]pair, 5)
	for i := range burst {
		burst[i] = newPair(t, ca)
	}
	for _, p := range burst {
		w.write(t, p)
	}
	rec.expectNext(burst[len(burst)-1].serial)
	rec.stop()
	rec.noMoreUpdates()
}

// Rewriting the certificate and then the key in place: the state in
// between (new certificate, old key) is reported and never published; the
// last good pair stays until the key catches up.
func TestWatchInPlaceRewriteNeverPublishesMismatch(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	a, b := newPair(t, ca), newPair(t, ca)
	writeInPlace(t, dir, a)
	rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
	rec.expectNext(a.serial)

	if err := os.WriteFile(filepath.Join(dir, certName), b.cert, 0o600); err != nil {
		t.Fatal(err)
	}
	err := rec.reportContaining("does not match the leaf certificate")
	if !strings.Contains(err.Error(), "last good pair stays in use") {
		t.Errorf("report %q does not say the last good pair stays", err)
	}
	// The load that failed ran after any earlier one: nothing was
	// published in between.
	select {
	case s := <-rec.updates:
		t.Fatalf("published serial %x while the key did not match", s)
	default:
	}
	if err := os.WriteFile(filepath.Join(dir, keyName), b.key, 0o600); err != nil {
		t.Fatal(err)
	}
	rec.expectNext(b.serial)
	rec.stop()
	rec.noMoreUpdates()
}

// Invalid states are reported, publish nothing, and are recovered from.
func TestWatchReportsAndRecovers(t *testing.T) {
	ca, other := testca.New(t, td), testca.New(t, td)
	tests := []struct {
		name    string
		break_  func(t *testing.T, dir string, good pair)
		wantErr string
	}{
		{name: "expired certificate", wantErr: "may have expired", break_: func(t *testing.T, dir string, _ pair) {
			writeRenamed(t, dir, newPair(t, ca, testca.WithTTL(-time.Second)))
		}},
		{name: "bundle of another CA", wantErr: "verifying the chain", break_: func(t *testing.T, dir string, good pair) {
			renameOver(t, filepath.Join(dir, bundleName), pemCerts(other.Cert()))
		}},
		{name: "key removed", wantErr: "reading the private key", break_: func(t *testing.T, dir string, _ pair) {
			if err := os.Remove(filepath.Join(dir, keyName)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "directory removed", wantErr: "opening the directory", break_: func(t *testing.T, dir string, _ pair) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "garbage certificate", wantErr: "not a PEM block", break_: func(t *testing.T, dir string, _ pair) {
			renameOver(t, filepath.Join(dir, certName), []byte("garbage"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			a, b := newPair(t, ca), newPair(t, ca)
			writeRenamed(t, dir, a)
			rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
			rec.expectNext(a.serial)

			tt.break_(t, dir, a)
			rec.reportContaining(tt.wantErr)

			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			// No state on the way from the broken one to b is a
			// valid set, so b is the next publication.
			writeRenamedBundleLast(t, dir, b)
			rec.expectNext(b.serial)
			rec.stop()
			rec.noMoreUpdates()
		})
	}
}

// The first good load after a reported error is published even when the
// files are the same as before, so that the host clears the error.
func TestWatchRecoveryToSameSetIsPublished(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	a := newPair(t, ca)
	writeRenamed(t, dir, a)
	rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
	rec.expectNext(a.serial)
	if err := os.Remove(filepath.Join(dir, keyName)); err != nil {
		t.Fatal(err)
	}
	rec.reportContaining("reading the private key")
	renameOver(t, filepath.Join(dir, keyName), a.key)
	rec.expectNext(a.serial)
	rec.stop()
	rec.noMoreUpdates()
}

// The directory may not exist when Watch starts.
func TestWatchDirectoryAppearsLater(t *testing.T) {
	ca := testca.New(t, td)
	dir := filepath.Join(t.TempDir(), "tls")
	rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
	rec.reportContaining("opening the directory")
	w := &atomicWriter{dir: dir}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := newPair(t, ca)
	w.write(t, a)
	rec.expectNext(a.serial)
	rec.stop()
	rec.noMoreUpdates()
}

func TestWatchWrongSPIFFEID(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	writeRenamed(t, dir, newPair(t, ca))
	rec := startWatch(t, newIssuer(t, dir, "20ms"), &hostapi.IssueRequest{X509: true, SPIFFEID: spiffeid.RequireFromPath(td, "/db")})
	rec.reportContaining("not the requested")
	rec.stop()
	rec.noMoreUpdates()
}

func TestWatchRefusesJWTBundles(t *testing.T) {
	iss := newIssuer(t, t.TempDir(), "20ms")
	err := iss.Watch(t.Context(), &hostapi.IssueRequest{X509: true, JWTBundles: true}, func(*hostapi.Credentials) {}, func(error) {})
	if err == nil || !strings.Contains(err.Error(), "X.509 credentials only") {
		t.Fatalf("Watch = %v, want a refusal", err)
	}
}

// Cancelling Watch's context, or closing the issuer, ends every Watch and
// leaves no goroutine behind.
func TestWatchLeavesNoGoroutine(t *testing.T) {
	tests := []struct {
		name string
		stop func(iss interface{ Close() error }, recs []*recorder)
	}{
		{name: "context cancelled", stop: func(_ interface{ Close() error }, recs []*recorder) {
			for _, r := range recs {
				r.stop()
			}
		}},
		{name: "issuer closed", stop: func(iss interface{ Close() error }, recs []*recorder) { _ = iss.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := testca.New(t, td)
			dir := t.TempDir()
			a := newPair(t, ca)
			writeRenamed(t, dir, a)
			before := runtime.NumGoroutine()
			iss := newIssuer(t, dir, "20ms")
			var recs []*recorder
			for range 5 {
				r := startWatch(t, iss, nil)
				r.expectNext(a.serial)
				recs = append(recs, r)
			}
			tt.stop(iss, recs)
			for _, r := range recs {
				r.wait()
			}
			deadline := time.Now().Add(waitFor)
			for runtime.NumGoroutine() > before {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<16)
					t.Fatalf("%d goroutines, %d before Watch:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(10 * time.Millisecond) // polling: no event signals a goroutine's exit
			}
		})
	}
}

// Not even the parent exists at first: the directory is found by polling,
// then the parent is watched.
func TestWatchParentAppearsLater(t *testing.T) {
	ca := testca.New(t, td)
	parent := filepath.Join(t.TempDir(), "mnt")
	dir := filepath.Join(parent, "tls")
	rec := startWatch(t, newIssuer(t, dir, "20ms"), nil)
	rec.reportContaining("opening the directory")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := newPair(t, ca), newPair(t, ca)
	writeRenamedBundleLast(t, dir, a)
	rec.expectNext(a.serial)
	// Removed and re-created: seen through the parent's watch.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	rec.reportContaining("opening the directory")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRenamedBundleLast(t, dir, b)
	rec.expectNext(b.serial)
	rec.stop()
	rec.noMoreUpdates()
}
