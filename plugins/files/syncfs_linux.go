package files

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncIsFree reports whether fsync is a no-op on f's filesystem (tmpfs,
// ramfs), where syncAll does not pay for goroutines.
func syncIsFree(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	// Type is int32 on 32-bit platforms and RAMFS_MAGIC overflows it:
	// compare the 32 bits.
	t := uint32(st.Type)
	return t == unix.TMPFS_MAGIC || t == unix.RAMFS_MAGIC
}
