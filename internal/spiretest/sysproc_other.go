//go:build unix && !linux

package spiretest

import "syscall"

// sysProcAttr puts a child in its own process group, so that stopping it
// reaches anything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
