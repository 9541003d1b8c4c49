package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the data layout's internal entries, as in Kubernetes'
// AtomicWriter.
const (
	// DataDirName is the symlink to the current version directory.
	DataDirName = "..data"
	// dataTmpName is the symlink renamed over DataDirName to swap it.
	dataTmpName = "..data_tmp"
	// versionLayout names version directories: "..<UTC timestamp>.<random>".
	versionLayout = "..2006_01_02_15_04_05."
)

// writeData writes the data layout, the way Kubernetes' AtomicWriter does:
//
//  1. write every file to a new version directory "..<timestamp>.<random>"
//     in Dir, with its mode, and fsync the files and the directory, all at
//     once (see syncAll);
//  2. create the user-visible symlink "<name> -> ..data/<name>" of every
//     name that does not exist yet (dangling until step 3);
//  3. point a new "..data_tmp" symlink at the version directory and rename
//     it over "..data": the one atomic step that publishes the new set,
//     and fsync Dir;
//  4. turn any user-visible name that is not the right symlink (a regular
//     file left by the flat layout) into one, remove the symlinks of names
//     the new set lacks, and remove the old version directories.
//
// A failure up to the fsync of Dir in step 3 points "..data" back at the
// previous version (if the swap was made), fsyncs Dir again, removes what
// the Write created and leaves the published set as it was; when that
// second fsync fails too, the new version directory stays, since "..data"
// may still point at it on disk. Like a flat commit, a rotation
// waits for two rounds of fsync: the new version, then the swap.
func (w *Writer) writeData(entries []entry) (paths []string, err error) {
	dir := w.cfg.Dir
	dataLink := filepath.Join(dir, DataDirName)
	oldVersion, lerr := os.Readlink(dataLink)
	if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %q: %w", dataLink, lerr)
	}
	var oldNames []string
	if oldVersion != "" {
		des, err := os.ReadDir(filepath.Join(dir, oldVersion))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("listing the current version %q: %w", oldVersion, err)
		}
		for _, de := range des {
			oldNames = append(oldNames, de.Name())
		}
	}

	version, err := os.MkdirTemp(dir, time.Now().UTC().Format(versionLayout))
	if err != nil {
		return nil, fmt.Errorf("creating a version directory: %w", err)
	}
	var created []string // user-visible symlinks this Write created
	// swapped: "..data" points at version; published: and that is durable,
	// past the point of rolling back.
	swapped, published := false, false
	defer func() {
		if err == nil || published {
			return
		}
		if swapped {
			if rerr := restoreDataLink(dir, oldVersion); rerr != nil {
				err = errors.Join(err, rerr)
				return // version is what "..data" points at: keep it
			}
			// The restored link must be durable before the version it
			// replaced goes: a crash in between could leave "..data"
			// pointing at a removed directory.
			if serr := w.syncDirs(dir); serr != nil {
				err = errors.Join(err, serr)
				return // "..data" may still point at version on disk: keep it
			}
		}
		for _, p := range created {
			_ = os.Remove(p)
		}
		_ = os.Remove(filepath.Join(dir, dataTmpName))
		_ = os.RemoveAll(version)
	}()
	if err = os.Chmod(version, 0o755); err != nil {
		return nil, fmt.Errorf("setting the mode of %q: %w", version, err)
	}
	staged := make([]*os.File, 0, len(entries)+1)
	for _, e := range entries {
		f, werr := writeNew(filepath.Join(version, e.name), e.data, e.mode)
		if werr != nil {
			closeAll(staged)
			return nil, fmt.Errorf("writing %q: %w", e.name, werr)
		}
		staged = append(staged, f)
	}
	// The files and the version directory's entries, in one round: the
	// version is durable before anything points at it.
	vd, err := os.Open(version)
	if err != nil {
		closeAll(staged)
		return nil, fmt.Errorf("syncing directory %q: %w", version, err)
	}
	if err = w.syncAll(append(staged, vd)); err != nil {
		return nil, err
	}

	var fix []string // names to turn into symlinks after the swap
	for _, e := range entries {
		p := filepath.Join(dir, e.name)
		target := DataDirName + "/" + e.name
		fi, lerr := os.Lstat(p)
		switch {
		case errors.Is(lerr, fs.ErrNotExist):
			if err = os.Symlink(target, p); err != nil {
				return nil, fmt.Errorf("linking %q: %w", p, err)
			}
			created = append(created, p)
		case lerr != nil:
			err = lerr
			return nil, fmt.Errorf("inspecting %q: %w", p, err)
		case fi.IsDir():
			err = errors.New("it is a directory")
			return nil, fmt.Errorf("linking %q: %w; remove it or choose another file name", p, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			if t, _ := os.Readlink(p); t != target {
				fix = append(fix, e.name)
			}
		default:
			fix = append(fix, e.name)
		}
	}

	tmpLink := filepath.Join(dir, dataTmpName)
	_ = os.Remove(tmpLink)
	if err = os.Symlink(filepath.Base(version), tmpLink); err != nil {
		return nil, fmt.Errorf("linking %q: %w", tmpLink, err)
	}
	if err = w.rename(tmpLink, dataLink); err != nil {
		return nil, fmt.Errorf("swapping %q: %w", dataLink, err)
	}
	swapped = true
	if err = w.syncDirs(dir); err != nil {
		return nil, err
	}
	published = true

	// The new set is published; what follows tidies up. A failure to fix a
	// user-visible name is an error (that name is not delivered), a
	// failure to remove an old version is only logged.
	var errs []error
	for _, name := range fix {
		if ferr := replaceWithSymlink(dir, name, DataDirName+"/"+name); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	inNew := make(map[string]bool, len(entries))
	for _, e := range entries {
		inNew[e.name] = true
	}
	for _, name := range oldNames {
		if inNew[name] {
			continue
		}
		p := filepath.Join(dir, name)
		if t, rerr := os.Readlink(p); rerr == nil && t == DataDirName+"/"+name {
			if rerr := os.Remove(p); rerr != nil {
				errs = append(errs, fmt.Errorf("removing stale link %q: %w", p, rerr))
			}
		}
	}
	w.removeOldVersions(dir, filepath.Base(version))
	if len(fix) > 0 {
		if serr := w.syncDirs(dir); serr != nil {
			errs = append(errs, serr)
		}
	}
	if err = errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.name))
	}
	return paths, nil
}

// restoreDataLink points dir's "..data" back at oldVersion, or removes it
// when there was none (the failed Write was the first), undoing a swap.
func restoreDataLink(dir, oldVersion string) error {
	dataLink := filepath.Join(dir, DataDirName)
	if oldVersion == "" {
		if err := os.Remove(dataLink); err != nil {
			return fmt.Errorf("restoring %q: %w", dataLink, err)
		}
		return nil
	}
	tmpLink := filepath.Join(dir, dataTmpName)
	_ = os.Remove(tmpLink)
	if err := os.Symlink(oldVersion, tmpLink); err != nil {
		return fmt.Errorf("restoring %q: %w", dataLink, err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		_ = os.Remove(tmpLink)
		return fmt.Errorf("restoring %q: %w", dataLink, err)
	}
	return nil
}

// replaceWithSymlink atomically replaces dir/name with a symlink to target.
func replaceWithSymlink(dir, name, target string) error {
	p := filepath.Join(dir, name)
	tmp := transientName(dir, name, tmpSuffix)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("linking %q: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("linking %q: %w", p, err)
	}
	return nil
}

// isVersionDir reports whether name is in the pattern writeData names its
// version directories with (versionLayout, then MkdirTemp's decimal random
// suffix). Nothing else in Dir is the writer's to remove: a user's
// "..keep" stays.
func isVersionDir(name string) bool {
	stamp := len(versionLayout)
	if len(name) <= stamp || !strings.HasPrefix(name, "..") {
		return false
	}
	if _, err := time.Parse(versionLayout, name[:stamp]); err != nil {
		return false
	}
	for _, c := range name[stamp:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// removeOldVersions removes every version directory in dir but current,
// including ones a crash left behind, and nothing else: see isVersionDir.
func (w *Writer) removeOldVersions(dir, current string) {
	des, err := os.ReadDir(dir)
	if err != nil {
		w.log.Warn("cannot list old versions to remove them", "dir", dir, "error", err)
		return
	}
	for _, de := range des {
		n := de.Name()
		if !de.IsDir() || n == current || !isVersionDir(n) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			w.log.Warn("cannot remove an old version", "path", filepath.Join(dir, n), "error", err)
		}
	}
}
