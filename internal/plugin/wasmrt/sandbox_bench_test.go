package wasmrt_test

import (
	"context"
	"strings"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"google.golang.org/grpc/status"
)

// BenchmarkWriterFS is one Notify in which a writer's guest writes a file
// in /out: the cost of the file system a guest sees (see rootfs.go).
func BenchmarkWriterFS(b *testing.B) {
	cfg, _ := config(b, "notifier")
	cfg.Kind, cfg.WriteDir = hostapi.KindWriter, b.TempDir()
	p := open(b, cfg, `{}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		err := notify(ctx, p, "write:/out/cert.pem")
		if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "write succeeded") {
			b.Fatal(msg)
		}
	}
}
