// Command loud is a hostile go-plugin notifier for the CLI's tests: it
// calls itself by a name with terminal escapes, and fails every Notify
// with a multi-MiB error message that starts with escape sequences (set
// the terminal's title, clear the screen).
package main

import (
	"context"
	"strings"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/goplugin"
)

type notifier struct{}

// Notify implements hostapi.Notifier.
func (notifier) Notify(context.Context, *hostapi.RotationEvent) error {
	return sdk.Errorf(sdk.CodeUnavailable, "%s", "\x1b]0;pwned\x07\x1b[2J\x1b[H"+strings.Repeat("E", 3<<20))
}

func main() {
	goplugin.Serve(sdk.Info{Name: "loud\x1b[31m", Version: "0.1.0"}, notifier{})
}
