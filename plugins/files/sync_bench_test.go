//go:build linux

package files_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The benchmarks in this file measure the filesystem, not the writer: they
// give the floor under a rotation on the disk that os.TempDir (or TMPDIR)
// is on, and compare ways of making a set of new files durable before they
// are renamed into place. docs/PERFORMANCE.md §1 quotes them.

// BenchmarkFsyncFloor is the cost of making one new 1 KiB file durable:
// create, write, fsync, close. On a journalling filesystem that is one
// journal commit plus a cache flush, the least a durable rotation can cost.
// DirFsync adds nothing but an fsync of a directory after a rename in it,
// the second commit a rotation needs (a rename must not become durable
// before the data it exposes).
func BenchmarkFsyncFloor(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 1024)
	b.Run("file", func(b *testing.B) {
		p := filepath.Join(dir, "f")
		for b.Loop() {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.Remove(p); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("renamed+dir", func(b *testing.B) {
		p, q := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := os.Rename(p, q); err != nil {
				b.Fatal(err)
			}
			if err := fsyncDir(dir); err != nil {
				b.Fatal(err)
			}
			p, q = q, p
		}
	})
}

// BenchmarkSyncStrategy stages four new files of 1.5 KiB (the flat
// layout's bundle, SVID, key and JWT token), makes them durable one of
// several ways, renames them over their targets and fsyncs the directory:
// the syscalls of one flat rotation.
//
//   - serial: fsync each file right after writing it (the writer up to
//     this change);
//   - concurrent: write all, then fsync them from one goroutine each, so
//     that the filesystem can put them in one journal commit;
//   - concurrent-datasync: the same with fdatasync;
//   - syncfs: write all, then one syncfs(2) of the filesystem, which also
//     flushes every other process's dirty data on it.
func BenchmarkSyncStrategy(b *testing.B) {
	const nfiles = 4
	data := make([]byte, 1536)
	strategies := []struct {
		name string
		sync func(fs []*os.File) error
	}{
		{"serial", nil}, // synced in the write loop
		{"concurrent", func(fs []*os.File) error { return syncAll(fs, (*os.File).Sync) }},
		{"concurrent-datasync", func(fs []*os.File) error {
			return syncAll(fs, func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) })
		}},
		{"syncfs", func(fs []*os.File) error { return unix.Syncfs(int(fs[0].Fd())) }},
	}
	for _, s := range strategies {
		b.Run(s.name, func(b *testing.B) {
			dir := b.TempDir()
			fs := make([]*os.File, nfiles)
			for b.Loop() {
				for i := range fs {
					f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf(".f%d.tmp", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.Write(data); err != nil {
						b.Fatal(err)
					}
					if s.sync == nil {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					}
					fs[i] = f
				}
				if s.sync != nil {
					if err := s.sync(fs); err != nil {
						b.Fatal(err)
					}
				}
				for i, f := range fs {
					if err := f.Close(); err != nil {
						b.Fatal(err)
					}
					if err := os.Rename(f.Name(), filepath.Join(dir, fmt.Sprintf("f%d", i))); err != nil {
						b.Fatal(err)
					}
				}
				if err := fsyncDir(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func syncAll(fs []*os.File, sync1 func(*os.File) error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() { errs[i] = sync1(f) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
