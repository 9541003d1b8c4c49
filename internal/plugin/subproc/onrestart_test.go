package subproc_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/svidagent/svidagent/internal/plugin/subproc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestOnRestart: the hook runs once per restart after a crash, never for
// the first start; the agent counts restarts with it.
func TestOnRestart(t *testing.T) {
	var restarts atomic.Int64
	p, _ := open(t, func(c *subproc.Config) { c.OnRestart = func() { restarts.Add(1) } })
	if _, pid := echo(t, p); pid == 0 || restarts.Load() != 0 {
		t.Fatalf("after the first start: pid %d, %d restarts; want 0", pid, restarts.Load())
	}
	for i := 1; i <= 2; i++ {
		if err := notify(context.Background(), p, "crash"); status.Code(err) != codes.Unavailable {
			t.Fatalf("crash %d: %v", i, err)
		}
		echo(t, p) // restarts it
		if got := restarts.Load(); got != int64(i) {
			t.Errorf("after crash %d: %d restarts counted, want %d", i, got, i)
		}
	}
}
