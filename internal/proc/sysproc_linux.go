package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// sysProcAttr is for a command started without the reaper, which on Linux
// Start never does (useReaper): its own process group, and SIGTERM from
// the kernel when the thread that started it exits (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// groupHasLiveMember reports whether a process of group pgid that is not a
// zombie shows in /proc. If /proc cannot be read it answers true, so that
// callers keep treating the group as alive.
func groupHasLiveMember(pgid int) bool {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return true
	}
	for _, path := range stats {
		st, ok := readStat(path)
		if ok && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

// stat is what the package reads from /proc/<pid>/stat.
type stat struct {
	state      byte
	ppid, pgrp int
}

// readStat returns the state, parent and process group of a
// /proc/<pid>/stat file.
func readStat(path string) (stat, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return stat{}, false // the process is gone
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return stat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], ppid: ppid, pgrp: pgrp}, true
}

// useReaper is true: commands run under the reaper (reaper_linux.go).
const useReaper = true
