//go:build unix && !linux

package gopluginhost

import "syscall"

// sysProcAttr puts the plugin in its own process group. There is no
// Pdeathsig outside Linux: Close kills the group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
