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
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}
