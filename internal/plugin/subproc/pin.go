package subproc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// pinDirMode is the mode of <StateDir>/plugins and of the pinned copies.
const pinDirMode = 0o700

// pinChunk is the size of the reads that compare an executable with its
// pinned copy.
const pinChunk = 1 << 20

// pin reads path once, hashes those bytes, compares them with want (a hex
// sha256; empty skips the comparison) and makes sure that
// <stateDir>/plugins/<sha256> holds exactly those bytes, mode 0700. It
// returns the copy's path and the sha256. The copy is what gets executed:
// the bytes hashed are the bytes run, whatever happens to path later.
func pin(path, want, stateDir string) (pinned, sum string, err error) {
	if want != "" {
		// Every start but the first: the copy exists. One pass over both
		// files, a chunk at a time, hashes the executable and compares it
		// with the copy.
		pinned = filepath.Join(stateDir, "plugins", strings.ToLower(want))
		same, sum, err := sameAsPinned(path, pinned)
		if err != nil {
			return "", "", err
		}
		if sum != "" && sum != strings.ToLower(want) {
			return "", sum, mismatchErr(path, sum, want)
		}
		if same {
			return pinned, sum, nil
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("reading plugin %s: %w", path, err)
	}
	h := sha256.Sum256(b)
	sum = hex.EncodeToString(h[:])
	if want != "" && !strings.EqualFold(want, sum) {
		return "", sum, mismatchErr(path, sum, want)
	}
	dir := filepath.Join(stateDir, "plugins")
	if err := os.MkdirAll(dir, pinDirMode); err != nil {
		return "", sum, fmt.Errorf("creating the plugin directory %s: %w", dir, err)
	}
	// MkdirAll keeps an existing directory's mode: tighten it.
	if err := os.Chmod(dir, pinDirMode); err != nil {
		return "", sum, fmt.Errorf("securing the plugin directory %s: %w", dir, err)
	}
	pinned = filepath.Join(dir, sum)
	if ok, err := pinnedSame(pinned, b); err != nil {
		return "", sum, err
	} else if ok {
		return pinned, sum, nil
	}
	tmp, err := writeCopy(dir, b)
	if err == nil {
		err = os.Rename(tmp, pinned)
	}
	if err != nil {
		if tmp != "" {
			_ = os.Remove(tmp)
		}
		return "", sum, fmt.Errorf("pinning plugin %s to %s: %w", path, pinned, err)
	}
	return pinned, sum, nil
}

// writeCopy writes b to a new file in dir, mode 0700, synced and closed,
// and returns its name (empty if it was never created).
//
// No process may be forked while the write descriptor is open: a child
// holds its copy of every descriptor until its own exec closes it, and an
// executable open for writing anywhere cannot be run (ETXTBSY, "text file
// busy"). Plugins start concurrently, so another plugin's fork can land
// in that window. The syscall package takes ForkLock for writing around
// every fork; holding it for reading here keeps forks out until the
// descriptor is closed.
func writeCopy(dir string, b []byte) (name string, err error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	f, err := os.CreateTemp(dir, ".pin-*")
	if err != nil { // CreateTemp opens with O_EXCL
		return "", err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Chmod(pinDirMode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

// pinnedOK reports whether pinned exists as a regular 0700 file with
// content hashing to sum. A wrong copy is removed.
func pinnedOK(pinned, sum string) (bool, error) {
	fi, err := os.Lstat(pinned)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking the pinned plugin %s: %w", pinned, err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm() == pinDirMode {
		f, err := os.Open(pinned)
		if err != nil {
			return false, fmt.Errorf("checking the pinned plugin %s: %w", pinned, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		_ = f.Close()
		if err != nil {
			return false, fmt.Errorf("checking the pinned plugin %s: %w", pinned, err)
		}
		if hex.EncodeToString(h.Sum(nil)) == sum {
			return true, nil
		}
	}
	if err := os.RemoveAll(pinned); err != nil {
		return false, fmt.Errorf("removing the stale pinned plugin %s: %w", pinned, err)
	}
	return false, nil
}

// pinnedSame reports whether pinned exists as a regular 0700 file holding
// exactly b; it compares bytes, which is cheaper than hashing them again. A
// wrong copy is removed.
func pinnedSame(pinned string, b []byte) (bool, error) {
	fi, err := os.Lstat(pinned)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking the pinned plugin %s: %w", pinned, err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm() == pinDirMode && fi.Size() == int64(len(b)) {
		have, err := os.ReadFile(pinned)
		if err != nil {
			return false, fmt.Errorf("checking the pinned plugin %s: %w", pinned, err)
		}
		if bytes.Equal(have, b) {
			return true, nil
		}
	}
	if err := os.RemoveAll(pinned); err != nil {
		return false, fmt.Errorf("removing the stale pinned plugin %s: %w", pinned, err)
	}
	return false, nil
}

func mismatchErr(path, sum, want string) error {
	return fmt.Errorf("verifying plugin (%s): sha256 mismatch: config pins %s, file has %s; if you trust this file, run `svidagent plugin hash %s` and update sha256 in the plugin block",
		path, strings.ToLower(want), sum, path)
}

// sameAsPinned reads path once, a chunk at a time, hashing it and
// comparing it with pinned. same reports whether pinned is a regular 0700
// file holding exactly the bytes hashed. sum is the hex sha256 of path, or
// empty when pinned is missing or cannot match (then path is not read).
// The caller falls back to pin's copy, which reports and replaces a bad
// pinned file.
func sameAsPinned(path, pinned string) (same bool, sum string, err error) {
	fi, err := os.Lstat(pinned)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != pinDirMode {
		return false, "", nil
	}
	src, err := os.Open(path)
	if err != nil {
		return false, "", fmt.Errorf("reading plugin %s: %w", path, err)
	}
	defer src.Close()
	if si, err := src.Stat(); err != nil || si.Size() != fi.Size() {
		return false, "", nil
	}
	cp, err := os.Open(pinned)
	if err != nil {
		return false, "", nil
	}
	defer cp.Close()
	h := sha256.New()
	a, b := make([]byte, pinChunk), make([]byte, pinChunk)
	same = true
	for {
		n, rerr := io.ReadFull(src, a)
		if n > 0 {
			h.Write(a[:n])
			if same {
				m, _ := io.ReadFull(cp, b[:n])
				same = m == n && bytes.Equal(a[:n], b[:n])
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return false, "", fmt.Errorf("reading plugin %s: %w", path, rerr)
		}
	}
	if same { // the copy ends where the executable does
		n, _ := cp.Read(b[:1])
		same = n == 0
	}
	return same, hex.EncodeToString(h.Sum(nil)), nil
}
