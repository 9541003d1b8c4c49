package subproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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

// limitAddressSpace sets pid's RLIMIT_AS to its current address space
// (VmSize) plus limit, and returns the new limit.
func limitAddressSpace(pid int, limit uint64) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var vm uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmSize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading VmSize of pid %d: %w", pid, err)
			}
			vm = kb << 10
		}
	}
	if vm == 0 {
		return 0, fmt.Errorf("reading VmSize of pid %d: not in /proc/%d/status", pid, pid)
	}
	rl := unix.Rlimit{Cur: vm + limit, Max: vm + limit}
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &rl, nil); err != nil {
		return 0, fmt.Errorf("setting RLIMIT_AS of pid %d: %w", pid, err)
	}
	return rl.Cur, nil
}
