package gopluginhost

import "syscall"

// sysProcAttr puts the plugin in its own process group and has the kernel
// SIGKILL it when the thread that forked it exits: with the agent.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
