//go:build linux

package residency

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReleaseExecutable drops the test binary's own start-up pages and
// checks that fewer of them are resident and that the code still runs.
func TestReleaseExecutable(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	before := resident(t, st.Ino)
	released, err := ReleaseExecutable()
	if err != nil {
		t.Fatal(err)
	}
	after := resident(t, st.Ino)
	t.Logf("executable resident: %d KiB before, %d KiB after, %d KiB released", before>>10, after>>10, released>>10)
	if before == 0 {
		t.Fatal("no resident page of the executable was found in /proc/self/smaps")
	}
	if released == 0 || after >= before {
		t.Fatalf("resident %d bytes before, %d after, %d reported released: nothing was", before, after, released)
	}
	// The dropped pages come back from the file as they are used.
	if sum := sha256.Sum256([]byte("still runs")); sum[0] == 0 && sum[1] == 0 && sum[2] == 0 {
		t.Fatal("unlikely hash")
	}
}

// TestReleaseKeepsPrivateCopies maps one file twice, privately: a clean
// read-only mapping, and one whose first page was written (a private copy)
// before it was made read-only, as relocated data is. release must drop the
// first, whose bytes come back from the file, and leave the second whole:
// dropping it would bring back the file's bytes in place of the written
// ones.
func TestReleaseKeepsPrivateCopies(t *testing.T) {
	const size = 4 * 4096
	path := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(path, bytes.Repeat([]byte("A"), size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}

	clean, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(clean)
	var sum byte
	for i := 0; i < size; i += 4096 {
		sum += clean[i] // make every page resident
	}

	// The copy must be opened read-write for a writable private mapping.
	rw, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	copied, err := unix.Mmap(int(rw.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(copied)
	copied[0] = 'B'
	for i := 4096; i < size; i += 4096 {
		sum += copied[i]
	}
	if err := unix.Mprotect(copied, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}

	ms, err := mappings(st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("found %d mappings of the file, want 2: %+v", len(ms), ms)
	}
	before := resident(t, st.Ino)
	released, err := release(st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	after := resident(t, st.Ino)
	t.Logf("resident %d bytes before, %d after (sum %d)", before, after, sum)
	if before != 2*size || after != size || released != size {
		t.Errorf("resident %d bytes before and %d after, %d released; want %d, %d and %d: the clean mapping dropped, the copied one kept", before, after, released, 2*size, size, size)
	}
	if copied[0] != 'B' {
		t.Errorf("the written page reads %q after release, want 'B': a private copy was dropped", copied[0])
	}
	if clean[0] != 'A' || clean[size-1] != 'A' {
		t.Errorf("the clean mapping reads %q...%q after release, want the file's 'A'", clean[0], clean[size-1])
	}
}

// BenchmarkReleaseExecutable is what the daemon pays, once, 5 s after its
// start-up settles: a read of /proc/self/smaps and one madvise per
// mapping of the executable.
func BenchmarkReleaseExecutable(b *testing.B) {
	for b.Loop() {
		if _, err := ReleaseExecutable(); err != nil {
			b.Fatal(err)
		}
	}
}

// resident is how many bytes of the mappings of the file with inode ino are
// resident.
func resident(t *testing.T, ino uint64) int64 {
	t.Helper()
	ms, err := mappings(ino)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range ms {
		n += m.rss
	}
	return n
}
