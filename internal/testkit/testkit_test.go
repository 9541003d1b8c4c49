package testkit_test

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/testkit"
)

func TestBufferRecordsConcurrentLogs(t *testing.T) {
	var b testkit.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { log.Info("line", "i", i) })
	}
	wg.Wait()
	if got := len(b.Records(t)); got != 8 {
		t.Fatalf("%d records, want 8:\n%s", got, b.String())
	}
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	n := 0
	testkit.WaitFor(t, time.Minute, "the third look", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("WaitFor looked %d times", n)
	}
}
