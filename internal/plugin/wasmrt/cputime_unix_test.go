//go:build unix

package wasmrt_test

import (
	"syscall"
	"time"
)

// cpuTime returns the process's user plus system CPU time, for a benchmark
// metric that other processes on the machine disturb less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
