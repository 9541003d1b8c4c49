package gopluginhost

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr puts the plugin in its own process group and has the kernel
// SIGKILL it when the thread that forked it exits: with the agent. With
// isolate, the plugin is also the first process (pid 1) of a new pid
// namespace, so that when it dies, by that SIGKILL or any other way, the
// kernel kills every process it left in the namespace, including
// grandchildren that called setsid or ignore SIGTERM. An agent that is
// not root also needs a user namespace for that; it maps the agent's own
// uid and gid onto themselves, so the plugin keeps the agent's identity
// (its supplementary groups show as the overflow group).
func sysProcAttr(isolate bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if !isolate {
		return a
	}
	a.Cloneflags = syscall.CLONE_NEWPID
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

// canIsolate is true where sysProcAttr(true) is worth trying.
const canIsolate = true

// namespaceDenied reports whether a failed start was refused for its
// namespaces (no privilege, user namespaces disabled or limited), so
// that a start without them may succeed.
func namespaceDenied(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS) ||
		errors.Is(err, syscall.EACCES)
}
