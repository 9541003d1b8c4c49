package wasmrt

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// Modes of what a guest creates in its output directory: a guest cannot
// choose them (WASI has no mode), so they are the tightest that work.
const (
	guestFileMode = 0o600
	guestDirMode  = 0o700
)

// rootFS is the file system a writer's guest sees at /out. Every path is
// resolved beneath the granted directory by an [os.Root], which follows a
// symbolic link only while it stays inside and refuses "..", absolute
// targets and links that lead out, with no window between a check and the
// use (it walks with openat and O_NOFOLLOW). A guest cannot make links
// (path_symlink and path_link fail with EPERM), so everything it leaves
// behind is a plain file or directory the agent and the workload can read
// without following anything the guest chose. See hostapi/ABI.md §7.
type rootFS struct {
	experimentalsys.UnimplementedFS
	root *os.Root
}

// openRootFS opens dir as a guest's file system. The caller closes it when
// no instance uses it any more.
func openRootFS(dir string) (*rootFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &rootFS{root: r}, nil
}

func (r *rootFS) String() string { return r.root.Name() }

func (r *rootFS) close() error { return r.root.Close() }

// name maps a wazero path (relative, cleaned, maybe "" or with a trailing
// slash) to a name for os.Root.
func name(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func (r *rootFS) OpenFile(p string, flag experimentalsys.Oflag, _ fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	p = name(p)
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		if st, err := r.root.Lstat(strings.TrimSuffix(p, "/")); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	var of int
	switch {
	case flag&experimentalsys.O_RDWR != 0:
		of = os.O_RDWR
	case flag&experimentalsys.O_WRONLY != 0:
		of = os.O_WRONLY
	default:
		of = os.O_RDONLY
	}
	dir := flag&experimentalsys.O_DIRECTORY != 0
	if dir && of != os.O_RDONLY {
		return nil, experimentalsys.EISDIR
	}
	for _, m := range []struct {
		sys experimentalsys.Oflag
		os  int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_DSYNC, os.O_SYNC},
		{experimentalsys.O_RSYNC, os.O_SYNC},
	} {
		if flag&m.sys != 0 {
			of |= m.os
		}
	}
	f, err := r.root.OpenFile(p, of, guestFileMode)
	if err != nil {
		return nil, errno(err)
	}
	if dir {
		st, err := f.Stat()
		if err != nil || !st.IsDir() {
			f.Close()
			if err != nil {
				return nil, errno(err)
			}
			return nil, experimentalsys.ENOTDIR
		}
	}
	return &rootFile{f: f, append: flag&experimentalsys.O_APPEND != 0}, 0
}

func (r *rootFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	st, err := r.root.Lstat(name(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(st), 0
}

func (r *rootFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	st, err := r.root.Stat(name(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(st), 0
}

func (r *rootFS) Mkdir(p string, _ fs.FileMode) experimentalsys.Errno {
	return errno(r.root.Mkdir(name(p), guestDirMode))
}

func (r *rootFS) Rename(from, to string) experimentalsys.Errno {
	return errno(r.root.Rename(name(from), name(to)))
}

func (r *rootFS) Rmdir(p string) experimentalsys.Errno {
	st, err := r.root.Lstat(name(p))
	if err != nil {
		return errno(err)
	}
	if !st.IsDir() {
		return experimentalsys.ENOTDIR
	}
	return errno(r.root.Remove(name(p)))
}

func (r *rootFS) Unlink(p string) experimentalsys.Errno {
	st, err := r.root.Lstat(name(p))
	if err != nil {
		return errno(err)
	}
	if st.IsDir() {
		return experimentalsys.EISDIR
	}
	return errno(r.root.Remove(name(p)))
}

func (r *rootFS) Readlink(p string) (string, experimentalsys.Errno) {
	s, err := r.root.Readlink(name(p))
	if err != nil {
		return "", errno(err)
	}
	return s, 0
}

// Link refuses: a hard link made by a guest would outlive the grant's
// intent (a second name for a file the workload reads).
func (r *rootFS) Link(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Symlink refuses: a link whose target the guest chooses is followed by
// whoever reads the directory next (the agent, the workload).
func (r *rootFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Chmod refuses: WASI has no mode, and a guest does not choose modes.
func (r *rootFS) Chmod(string, fs.FileMode) experimentalsys.Errno { return experimentalsys.EPERM }

// errno maps an error of os.Root to a WASI errno. An attempt to leave the
// root is EPERM, as wazero answers a path that escapes its preopen.
func errno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes from parent") {
		return experimentalsys.EPERM
	}
	var le *os.LinkError
	if errors.As(err, &le) && strings.Contains(le.Err.Error(), "escapes from parent") {
		return experimentalsys.EPERM
	}
	if errors.Is(err, io.EOF) {
		return 0
	}
	return experimentalsys.UnwrapOSError(err)
}

// rootFile is an open file of a rootFS.
type rootFile struct {
	experimentalsys.UnimplementedFile
	f        *os.File
	append   bool
	nonblock bool
}

func (f *rootFile) stat() (sys.Stat_t, experimentalsys.Errno) {
	st, err := f.f.Stat()
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(st), 0
}

func (f *rootFile) Dev() (uint64, experimentalsys.Errno) {
	st, e := f.stat()
	return st.Dev, e
}

func (f *rootFile) Ino() (sys.Inode, experimentalsys.Errno) {
	st, e := f.stat()
	return st.Ino, e
}

func (f *rootFile) IsDir() (bool, experimentalsys.Errno) {
	st, e := f.stat()
	return st.Mode.IsDir(), e
}

func (f *rootFile) IsAppend() bool { return f.append }

// SetAppend is refused but for the mode the file has: the file was opened
// with or without O_APPEND and stays so.
func (f *rootFile) SetAppend(enable bool) experimentalsys.Errno {
	if enable != f.append {
		return experimentalsys.ENOSYS
	}
	return 0
}

func (f *rootFile) IsNonblock() bool { return f.nonblock }

// SetNonblock is recorded only: files and directories never block.
func (f *rootFile) SetNonblock(enable bool) experimentalsys.Errno {
	f.nonblock = enable
	return 0
}

func (f *rootFile) Stat() (sys.Stat_t, experimentalsys.Errno) { return f.stat() }

func (f *rootFile) Read(b []byte) (int, experimentalsys.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, err := f.f.Read(b)
	return n, errno(err)
}

func (f *rootFile) Pread(b []byte, off int64) (int, experimentalsys.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, err := f.f.ReadAt(b, off)
	return n, errno(err)
}

// fileOffset is a file offset as wazero's sys.File.Seek takes it: int64.
// Spelling it by an alias keeps go vet's stdmethods check, which takes any
// Seek(int64, int) for an io.Seeker, from flagging the Errno result that
// wazero's interface requires: this Seek is not io.Seeker's.
type fileOffset = int64

func (f *rootFile) Seek(off fileOffset, whence int) (int64, experimentalsys.Errno) {
	if whence < io.SeekStart || whence > io.SeekEnd {
		return 0, experimentalsys.EINVAL
	}
	n, err := f.f.Seek(off, whence)
	return n, errno(err)
}

func (f *rootFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	ents, err := f.f.ReadDir(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	out := make([]experimentalsys.Dirent, 0, len(ents))
	for _, e := range ents {
		d := experimentalsys.Dirent{Name: e.Name(), Type: e.Type()}
		if info, err := e.Info(); err == nil {
			d.Ino = sys.NewStat_t(info).Ino
		}
		out = append(out, d)
	}
	return out, 0
}

func (f *rootFile) Write(b []byte) (int, experimentalsys.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, err := f.f.Write(b)
	return n, errno(err)
}

func (f *rootFile) Pwrite(b []byte, off int64) (int, experimentalsys.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, err := f.f.WriteAt(b, off)
	return n, errno(err)
}

func (f *rootFile) Truncate(size int64) experimentalsys.Errno {
	if size < 0 {
		return experimentalsys.EINVAL
	}
	return errno(f.f.Truncate(size))
}

func (f *rootFile) Sync() experimentalsys.Errno { return errno(f.f.Sync()) }

func (f *rootFile) Datasync() experimentalsys.Errno { return errno(f.f.Sync()) }

func (f *rootFile) Close() experimentalsys.Errno { return errno(f.f.Close()) }

// GuestOutDir is where a writer's guest sees its write_dir.
const GuestOutDir = "/out"

// HostPaths maps paths a writer's guest reported (in its own space, under
// [GuestOutDir]) to absolute host paths, for everything after the call: notifiers,
// /status, logs. A path outside /out, or a plugin without write_dir, is an
// error: the host never passes on a name it cannot place beneath the
// grant. See hostapi/ABI.md §7.
func (p *Plugin) HostPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return paths, nil
	}
	if p.cfg.WriteDir == "" {
		return nil, fmt.Errorf("plugin %q reported paths but has no write_dir", p.cfg.Name)
	}
	dir, err := filepath.Abs(p.cfg.WriteDir)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: resolving write_dir: %w", p.cfg.Name, err)
	}
	out := make([]string, len(paths))
	for i, gp := range paths {
		rel, ok := strings.CutPrefix(path.Clean(gp), GuestOutDir+"/")
		if !ok || !fs.ValidPath(rel) {
			return nil, fmt.Errorf("plugin %q reported path %q, which is not under %s", p.cfg.Name, gp, GuestOutDir)
		}
		out[i] = filepath.Join(dir, filepath.FromSlash(rel))
	}
	return out, nil
}
