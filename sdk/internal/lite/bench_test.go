package lite_test

import (
	"strings"
	"testing"

	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	"github.com/svidagent/svidagent/sdk/internal/lite"
	"google.golang.org/protobuf/proto"
)

// BenchmarkUnmarshalNotify decodes a 4 KiB notification (the payload of
// docs/PERFORMANCE.md's call cost) with the generated code and by hand.
func BenchmarkUnmarshalNotify(b *testing.B) {
	in, err := proto.Marshal(&notifierv1.NotifyRequest{
		Name: "web", Reason: 1, TimeUnixNano: 1, Paths: []string{strings.Repeat("p", 4096)},
		X509: []*notifierv1.X509Identity{{SpiffeId: "spiffe://example.org/web", Serial: "0a", NotBefore: 1, NotAfter: 2}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m notifierv1.NotifyRequest
			if err := proto.Unmarshal(in, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m lite.NotifyRequest
			if err := m.Unmarshal(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
