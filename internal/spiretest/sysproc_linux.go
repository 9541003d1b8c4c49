package spiretest

import "syscall"

// sysProcAttr puts a child in its own process group, so that stopping it
// reaches anything it spawned, and has the kernel kill it if the test binary
// dies before cleanup runs.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
