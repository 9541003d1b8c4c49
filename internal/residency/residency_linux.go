//go:build linux

package residency

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReleaseExecutable drops the clean pages of the executable's read-only
// mappings from the process's resident set, and returns how many bytes
// were resident in the mappings it dropped.
func ReleaseExecutable() (released int64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("releasing start-up pages: %w", err)
	}
	return release(st.Ino)
}

// release drops the clean, read-only, private mappings of the file with
// inode ino (see ReleaseExecutable).
func release(ino uint64) (released int64, err error) {
	ms, err := mappings(ino)
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if !m.releasable() {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); e != 0 {
			return released, fmt.Errorf("releasing start-up pages: madvise %x-%x: %w", m.start, m.end, e)
		}
		released += m.rss
	}
	return released, nil
}

// mapping is one entry of /proc/self/smaps.
type mapping struct {
	start, end uintptr
	perms      string // "r-xp"
	rss, anon  int64  // bytes
}

// releasable: read-only, private, and no page of it a private copy.
func (m mapping) releasable() bool {
	return len(m.perms) == 4 && m.perms[1] == '-' && m.perms[3] == 'p' && m.anon == 0 && m.rss > 0
}

// mappings returns the mappings of the file with inode ino.
func mappings(ino uint64) ([]mapping, error) {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, fmt.Errorf("releasing start-up pages: %w", err)
	}
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			// A header: start-end perms offset dev inode [path].
			cur = nil
			n, err := strconv.ParseUint(f[4], 10, 64)
			if err != nil || n != ino {
				continue
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("releasing start-up pages: parsing smaps line %q", line)
			}
			out = append(out, mapping{start: uintptr(s), end: uintptr(e), perms: f[1]})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Rss:":
			cur.rss = kib(f[1])
		case "Anonymous:":
			cur.anon = kib(f[1])
		}
	}
	return out, sc.Err()
}

func kib(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n << 10
}
