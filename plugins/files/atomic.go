package files

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Suffixes of the transient files a commit makes next to its targets.
const (
	tmpSuffix    = ".svidagent-tmp"
	backupSuffix = ".svidagent-bak"
)

// commit replaces every entry's target as one unit:
//
//  1. stage: each new content goes to a temporary file in the target's
//     directory, created with the final mode (O_EXCL, then Fchmod to
//     defeat the umask) and written; then all the temporary files are
//     fsynced at once (see syncAll);
//  2. back up: each existing target is hard-linked to a backup name;
//  3. rename each temporary file over its target (or, for a removal,
//     unlink the target), in entry order;
//  4. fsync every directory touched (at once), then drop the backups.
//
// A rotation thus waits for two rounds of fsync, whatever its number of
// files: the data before any rename, the renames before Write returns.
//
// If any step fails, the targets already replaced are restored from their
// backups (or removed, if they did not exist), and every temporary and
// backup file is removed, so that the directory holds exactly what it held
// before. commit returns the paths written, in entry order.
func (w *Writer) commit(entries []entry) (paths []string, err error) {
	type op struct {
		entry
		tmp, bak string
		existed  bool // the target existed before the commit
		done     bool
	}
	ops := make([]op, len(entries))
	for i, e := range entries {
		ops[i].entry = e
	}

	defer func() {
		if err == nil {
			return
		}
		// Roll back in reverse order, with the real os.Rename.
		for i := len(ops) - 1; i >= 0; i-- {
			o := &ops[i]
			if !o.done {
				continue
			}
			var rerr error
			if o.bak != "" {
				rerr = os.Rename(o.bak, o.path())
				if rerr == nil {
					o.bak = ""
				}
			} else if !o.existed {
				rerr = os.Remove(o.path())
			}
			if rerr != nil {
				err = errors.Join(err, fmt.Errorf("restoring %q: %w", o.path(), rerr))
			}
		}
		for _, o := range ops {
			removeIfSet(o.tmp)
			removeIfSet(o.bak)
		}
	}()

	dirs := map[string]bool{}
	var staged []*os.File
	for i := range ops {
		o := &ops[i]
		dirs[o.dir] = true
		if o.remove {
			continue
		}
		var f *os.File
		if f, err = writeTemp(o.dir, o.name, o.data, o.mode); err != nil {
			closeAll(staged)
			return nil, err
		}
		o.tmp = f.Name()
		staged = append(staged, f)
	}
	if err = w.syncAll(staged); err != nil {
		return nil, err
	}
	for i := range ops {
		o := &ops[i]
		fi, lerr := os.Lstat(o.path())
		switch {
		case errors.Is(lerr, fs.ErrNotExist):
			if o.remove {
				continue
			}
		case lerr != nil:
			return nil, fmt.Errorf("inspecting %q: %w", o.path(), lerr)
		case fi.IsDir():
			return nil, fmt.Errorf("replacing %q: it is a directory; remove it or choose another file name", o.path())
		case o.remove:
			o.existed = true // renamed to a backup name in the next phase
		default:
			o.existed = true
			bak := transientName(o.dir, o.name, backupSuffix)
			if lerr := os.Link(o.path(), bak); lerr != nil {
				// A filesystem without hard links: go on without a backup;
				// a later failure cannot restore this one file.
				w.log.Warn("cannot back up a file before replacing it; a failed write may leave it replaced",
					"path", o.path(), "error", lerr)
				continue
			}
			o.bak = bak
		}
	}
	for i := range ops {
		o := &ops[i]
		if o.remove {
			if !o.existed {
				continue // already absent
			}
			// Removal is a rename to a backup name, undone by renaming back.
			bak := transientName(o.dir, o.name, backupSuffix)
			if err = w.rename(o.path(), bak); err != nil {
				return nil, fmt.Errorf("removing %q: %w", o.path(), err)
			}
			o.bak, o.done = bak, true
			continue
		}
		if err = w.rename(o.tmp, o.path()); err != nil {
			return nil, fmt.Errorf("replacing %q: %w", o.path(), err)
		}
		o.tmp, o.done = "", true
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	slices.Sort(sorted)
	if err = w.syncDirs(sorted...); err != nil {
		return nil, err
	}
	for i := range ops {
		removeIfSet(ops[i].bak)
		ops[i].bak = ""
		if !ops[i].remove {
			paths = append(paths, ops[i].path())
		}
	}
	return paths, nil
}

// writeTemp writes data to a new file next to name in dir and returns it,
// open and not yet synced. The file has mode from the moment it exists: it
// is created with O_EXCL and mode (which the umask can only narrow), then
// Fchmod sets the exact mode before any byte is written. On error nothing
// is left behind.
func writeTemp(dir, name string, data []byte, mode fs.FileMode) (*os.File, error) {
	f, err := writeNew(transientName(dir, name, tmpSuffix), data, mode)
	if err != nil {
		return nil, fmt.Errorf("staging %q: %w", filepath.Join(dir, name), err)
	}
	return f, nil
}

// writeNew creates path (which must not exist) with exactly mode, writes
// data and returns the file, still open, for syncAll. On error it closes
// and removes what it created.
func writeNew(path string, data []byte, mode fs.FileMode) (f *os.File, err error) {
	f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		return nil, err
	}
	return f, nil
}

// syncAll fsyncs every file in fds, each from its own goroutine, and closes
// them all, and returns every error, joined in the order of fds, once
// every fsync has returned.
//
// Why at once and not one after the other: on a journalling filesystem
// (ext4, XFS) an fsync of a new file waits for a journal commit and a
// cache flush, and concurrent fsyncs of files changed in the same running
// transaction share that one commit, where fsyncs in a row pay one each.
// The guarantee is the same as that of a loop: when syncAll returns nil,
// every file's data and size are durable. syncfs(2) would take one call
// too but flushes every other process's dirty data on the filesystem, and
// fdatasync was measured no faster here (new files need their inode
// committed either way): see BenchmarkSyncStrategy. On tmpfs, where fsync
// does nothing, the goroutines only added to the tail latency, so there
// the fsyncs run in a row.
func (w *Writer) syncAll(fds []*os.File) error {
	if len(fds) == 0 {
		return nil
	}
	errs := make([]error, len(fds))
	if len(fds) == 1 || syncIsFree(fds[0]) {
		for i, f := range fds {
			errs[i] = w.sync(f)
		}
	} else {
		var wg sync.WaitGroup
		for i, f := range fds {
			wg.Go(func() { errs[i] = w.sync(f) })
		}
		wg.Wait()
	}
	for i, f := range fds {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("syncing %q: %w", f.Name(), errs[i])
		}
		if cerr := f.Close(); cerr != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("closing %q: %w", f.Name(), cerr)
		}
	}
	return errors.Join(errs...)
}

// syncDirs fsyncs the directories dirs at once (see syncAll), so that the
// entries created, renamed or removed in them are durable.
func (w *Writer) syncDirs(dirs ...string) error {
	fds := make([]*os.File, 0, len(dirs))
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			closeAll(fds)
			return fmt.Errorf("syncing directory %q: %w", dir, err)
		}
		fds = append(fds, d)
	}
	return w.syncAll(fds)
}

// closeAll closes files that will not be synced.
func closeAll(fds []*os.File) {
	for _, f := range fds {
		_ = f.Close()
	}
}

// transientName returns a fresh hidden name for a temporary or backup copy
// of name in dir: ".<name>.<random><suffix>".
func transientName(dir, name, suffix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, "."+name+"."+hex.EncodeToString(b[:])+suffix)
}

func removeIfSet(path string) {
	if path != "" {
		_ = os.Remove(path)
	}
}
