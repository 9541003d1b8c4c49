// Command acceptall serves sdkbugs.AcceptAll, a notifier whose Validate
// accepts everything, as a go-plugin subprocess. Broken on purpose:
// validate_rejects_invalid must fail.
//
// Built by conformance's TestMain:
//
//	go build -o acceptall ./conformance/testdata/broken/cmd/acceptall
package main

import (
	"github.com/svidagent/svidagent/conformance/testdata/broken/sdkbugs"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/goplugin"
)

func main() { goplugin.Serve(sdk.Info{Name: "acceptall", Version: "0.0.1"}, sdkbugs.AcceptAll{}) }
