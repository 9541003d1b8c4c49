package hostapi_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/svidagent/svidagent/hostapi"
)

// logNotifier is a complete hostapi.Notifier: it prints one line per
// delivered X509-SVID. The same value works as a built-in, behind the WASM
// SDK or behind the go-plugin SDK.
type logNotifier struct{ w io.Writer }

func (n logNotifier) Notify(_ context.Context, ev *hostapi.RotationEvent) error {
	for _, id := range ev.X509 {
		fmt.Fprintf(n.w, "%s: %s rotated (%s), serial %s, expires %s\n",
			ev.Name, id.SPIFFEID, ev.Reason, id.Serial, id.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// A compile-time check that the type implements the interface.
var _ hostapi.Notifier = logNotifier{}

func ExampleNotifier() {
	var n hostapi.Notifier = logNotifier{w: os.Stdout}
	_ = n.Notify(context.Background(), &hostapi.RotationEvent{
		Name:   "web",
		Reason: hostapi.ChangedX509,
		X509: []hostapi.X509Identity{{
			SPIFFEID: "spiffe://example.org/web",
			Serial:   "0a1b2c",
			NotAfter: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC),
		}},
	})
	// Output: web: spiffe://example.org/web rotated (x509), serial 0a1b2c, expires 2026-12-03T12:00:00Z
}

// Validate-style errors name the attribute a user must fix.
func ExampleFieldErrors() {
	var fes hostapi.FieldErrors
	fes.Add("url", "must be an https:// URL")
	fmt.Println(fes.Err())
	// Output: url: must be an https:// URL
}
