package subproc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// cpuTime returns the CPU time that the threads of process pid have run
// so far, from /proc/<pid>/task/*/schedstat (nanoseconds, unlike the clock
// ticks of /proc/<pid>/stat). ok is false where there is no such file.
func cpuTime(pid int) (d time.Duration, ok bool) {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			d += time.Duration(ns)
			ok = true
		}
	}
	return d, ok
}
