package wasmrt_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"google.golang.org/protobuf/proto"
)

// dump formats b as ABI.md's worked example shows bytes: an offset and up
// to 16 bytes a line.
func dump(b []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		end := min(off+16, len(b))
		fmt.Fprintf(&sb, "%04x  % x\n", off, b[off:end])
	}
	return sb.String()
}

// abiExample returns the hex blocks of hostapi/ABI.md's worked example.
func abiExample(t *testing.T) (payload, request, ok, failed string) {
	t.Helper()
	req := &notifierv1.NotifyRequest{Name: "web", Reason: 1, Initial: true, Paths: []string{"/run/svid.pem"}}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return dump(b),
		dump(abi.EncodeRequest("svidagent.plugin.notifier.v1.Notifier/Notify", b)),
		dump(abi.EncodeResponse(0, "", nil)),
		dump(abi.EncodeResponse(14, "webhook down", nil))
}

// TestABIExample checks that the worked example in hostapi/ABI.md is what
// the encoder produces, so that the document cannot rot.
func TestABIExample(t *testing.T) {
	doc, err := os.ReadFile("../../../hostapi/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	payload, request, ok, failed := abiExample(t)
	for _, block := range []struct{ name, text string }{{"payload", payload}, {"request", request}, {"ok response", ok}, {"error response", failed}} {
		if !strings.Contains(string(doc), "```text\n"+block.text+"```\n") {
			t.Errorf("hostapi/ABI.md lacks the %s block; the encoder produces:\n```text\n%s```", block.name, block.text)
		}
	}
}
