package bench_test

import (
	"os"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/spiretest"
)

func TestZZHoldSPIRE(t *testing.T) {
	spire := spiretest.Start(t, spiretest.Options{})
	spire.CreateEntry(t, "spiffe://"+spire.TrustDomain()+"/hold", spiretest.UIDSelector())
	os.WriteFile("/tmp/spire.sock.path", []byte(spire.SocketPath()), 0o644)
	for {
		if _, err := os.Stat("/tmp/stop-spire"); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}
