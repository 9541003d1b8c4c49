package files_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/files"
)

// TestHammer runs two goroutines that Write concurrently (exercising the
// Writer's lock) while a reader reads the certificate and then the key,
// over and over, and checks that they match. With the data layout the
// reader resolves ..data once per read, so it must never see a mismatched
// pair; with the flat layout a reader that opens two files can, and the
// test only reports how often.
func TestHammer(t *testing.T) {
	p := newPKI(t)
	sets := make([]*hostapi.CredentialSet, 16)
	for i := range sets {
		sets[i] = p.set(t)
	}
	const writesPerWriter = 60

	for _, layout := range []string{files.LayoutData, files.LayoutFlat} {
		t.Run(layout, func(t *testing.T) {
			cfg := files.DefaultConfig()
			cfg.Dir = t.TempDir()
			cfg.Layout = layout
			w, err := files.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(context.Background(), sets[0]); err != nil {
				t.Fatal(err)
			}

			var reads, mismatches, vanished atomic.Int64
			done := make(chan struct{})
			readerErr := make(chan error, 1)
			go func() {
				defer close(readerErr)
				for {
					select {
					case <-done:
						return
					default:
					}
					certPath := filepath.Join(cfg.Dir, "svid.pem")
					keyPath := filepath.Join(cfg.Dir, "svid_key.pem")
					if layout == files.LayoutData {
						version, err := os.Readlink(filepath.Join(cfg.Dir, files.DataDirName))
						if err != nil {
							readerErr <- err
							return
						}
						certPath = filepath.Join(cfg.Dir, version, "svid.pem")
						keyPath = filepath.Join(cfg.Dir, version, "svid_key.pem")
					}
					match, err := readPair(certPath, keyPath)
					switch {
					case errors.Is(err, fs.ErrNotExist) && layout == files.LayoutData:
						vanished.Add(1) // the version was replaced and removed: retry
						continue
					case err != nil:
						readerErr <- err
						return
					}
					reads.Add(1)
					if !match {
						mismatches.Add(1)
					}
				}
			}()

			var wg sync.WaitGroup
			writeErrs := make(chan error, 2)
			for g := range 2 {
				wg.Go(func() {
					for i := range writesPerWriter {
						if _, err := w.Write(context.Background(), sets[(g+i)%len(sets)]); err != nil {
							writeErrs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(done)
			if err := <-readerErr; err != nil {
				t.Fatalf("reader: %v", err)
			}
			close(writeErrs)
			for err := range writeErrs {
				t.Fatalf("writer: %v", err)
			}
			if reads.Load() == 0 {
				t.Fatal("the reader completed no read")
			}
			t.Logf("%s: %d reads, %d mismatched pairs, %d retries after a version vanished",
				layout, reads.Load(), mismatches.Load(), vanished.Load())
			if layout == files.LayoutData && mismatches.Load() != 0 {
				t.Errorf("data layout: %d mismatched pairs, want 0", mismatches.Load())
			}
			if tr := transients(t, cfg.Dir); len(tr) > 0 {
				t.Errorf("transient files left: %v", tr)
			}
		})
	}
}

// readPair reads the certificate file, then the key file, and reports
// whether the key belongs to the leaf.
func readPair(certPath, keyPath string) (bool, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return false, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return false, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return false, errors.New("torn or empty file")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return false, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return false, err
	}
	return keyMatches(cert, key), nil
}

func BenchmarkWrite(b *testing.B) {
	p := newPKI(b)
	set := p.set(b)
	for _, layout := range []string{files.LayoutFlat, files.LayoutData, files.LayoutSPIFFEFS} {
		b.Run(layout, func(b *testing.B) {
			cfg := files.DefaultConfig()
			cfg.Dir = b.TempDir()
			cfg.Layout = layout
			w, err := files.New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Write(context.Background(), set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
