package subproc

import (
	"os"
	"path/filepath"
)

// socketDirName is the directory under the state directory where go-plugin
// makes each instance's plugin-dir* for the plugin's unix socket, so that
// a command plugin needs no writable $TMPDIR (docs/EDGE.md: read-only
// root).
const socketDirName = "run"

// maxSocketBase is the longest base directory whose socket paths
// (<base>/plugin-dir<10 digits>/plugin<10 digits>) still fit in a unix
// socket address: 107 bytes on Linux, the least of the unix systems.
const maxSocketBase = 107 - len("/plugin-dir0123456789/plugin0123456789")

// socketBase returns <stateDir>/run, created with mode 0700, as the base
// of go-plugin's socket directories. It returns "" (go-plugin then uses
// $TMPDIR) when that path is too long for a socket address or cannot be
// created.
func socketBase(stateDir string) string {
	dir := filepath.Join(stateDir, socketDirName)
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return ""
		}
		dir = abs
	}
	if len(dir) > maxSocketBase {
		return ""
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return dir
}
