//go:build !unix

package wasmrt_test

import "time"

// cpuTime returns 0: the CPU-time metric is reported on Unix only.
func cpuTime() time.Duration { return 0 }
