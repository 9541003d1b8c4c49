//go:build unix && !linux

package subproc

import (
	"errors"
	"syscall"
)

// sysProcAttr puts the plugin in its own process group. There is no
// Pdeathsig and no pid namespace outside Linux: Close kills the group.
func sysProcAttr(bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// canIsolate is false: there are no pid namespaces.
const canIsolate = false

func namespaceDenied(error) bool { return false }

func limitAddressSpace(int, uint64) (uint64, error) {
	return 0, errors.New("memory limits of subprocess plugins need Linux")
}
