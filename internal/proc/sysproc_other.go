//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr puts the command in its own process group, so that Stop
// reaches everything it spawned. There is no Pdeathsig outside Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// groupHasLiveMember is called after kill(-pgid, 0) succeeded; without
// /proc, zombies cannot be told apart, so the group counts as alive.
func groupHasLiveMember(int) bool { return true }

// useReaper is false: there is no PR_SET_CHILD_SUBREAPER outside Linux.
const useReaper = false

// Unused without a reaper.
const (
	envReaper    = ""
	reaperArg0   = ""
	reaperMargin = 0
)
