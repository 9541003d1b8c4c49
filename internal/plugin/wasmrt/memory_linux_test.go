package wasmrt_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestDiscardedMemoryUnmapped checks that a discarded instance's linear
// memory (an mmap reservation of the plugin's 32 MiB limit on Linux) is
// unmapped: 20 discarded instances must not leave 640 MiB of address space
// behind. (Counting lines of /proc/self/maps would not do: the kernel
// merges adjacent anonymous mappings.)
func TestDiscardedMemoryUnmapped(t *testing.T) {
	cfg, _ := config(t, "notifier")
	p := open(t, cfg, `{}`)
	vmSize := func() int64 { // KiB
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
				kib, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return kib
			}
		}
		t.Fatal("no VmSize in /proc/self/status")
		return 0
	}
	ctx := context.Background()
	if err := notify(ctx, p, "ok"); err != nil {
		t.Fatal(err)
	}
	before := vmSize()
	const n = 20
	for i := 0; i < n; i++ {
		if err := notify(ctx, p, "panic"); status.Code(err) != codes.Internal {
			t.Fatalf("Notify(panic) = %v, want INTERNAL", err)
		}
		if err := notify(ctx, p, "ok"); err != nil { // a fresh instance
			t.Fatal(err)
		}
	}
	if after := vmSize(); after-before >= n/2*wasmrt.MaxMemoryBytes>>10 {
		t.Fatalf("VmSize %d KiB before %d discarded instances, %d KiB after: their memory was not unmapped", before, n, after)
	}
}
