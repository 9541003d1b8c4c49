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
//     defeat the umask), written and fsynced;
//  2. back up: each existing target is hard-linked to a backup name;
//  3. rename each temporary file over its target (or, for a removal,
//     unlink the target), in entry order;
//  4. fsync every directory touched, then drop the backups.
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
	for i := range ops {
		o := &ops[i]
		dirs[o.dir] = true
		if o.remove {
			continue
		}
		if o.tmp, err = writeTemp(o.dir, o.name, o.data, o.mode); err != nil {
			return nil, err
		}
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
	for _, d := range sorted {
		if err = syncDir(d); err != nil {
			return nil, err
		}
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

// writeTemp writes data to a new file next to name in dir and returns its
// path. The file has mode from the moment it exists: it is created with
// O_EXCL and mode (which the umask can only narrow), then Fchmod sets the
// exact mode before any byte is written. On error nothing is left behind.
func writeTemp(dir, name string, data []byte, mode fs.FileMode) (string, error) {
	tmp := transientName(dir, name, tmpSuffix)
	if err := writeNew(tmp, data, mode); err != nil {
		return "", fmt.Errorf("staging %q: %w", filepath.Join(dir, name), err)
	}
	return tmp, nil
}

// writeNew creates path (which must not exist) with exactly mode, writes
// data and fsyncs it. On error it removes what it created.
func writeNew(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// transientName returns a fresh hidden name for a temporary or backup copy
// of name in dir: ".<name>.<random><suffix>".
func transientName(dir, name, suffix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, "."+name+"."+hex.EncodeToString(b[:])+suffix)
}

// syncDir fsyncs a directory so that the renames in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %q: %w", dir, err)
	}
	return nil
}

func removeIfSet(path string) {
	if path != "" {
		_ = os.Remove(path)
	}
}
