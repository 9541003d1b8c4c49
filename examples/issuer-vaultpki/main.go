// Command issuer-vaultpki is a svidagent issuer plugin, run as a go-plugin
// subprocess, that issues X509-SVIDs from HashiCorp Vault's PKI secrets
// engine: it sends the CSR the agent generated (the key never leaves the
// agent) to POST /v1/<mount>/sign/<role> with uri_sans set to the SPIFFE ID,
// and returns the signed chain and the CA chain's root as the bundle.
//
// It implements hostapi.Lifecycle to keep its Vault token alive, the way
// certctl's Vault PKI connector does: lookup-self at Start, renew-self at
// half the token's TTL (re-derived from each renewal's lease_duration), a
// WARN and an exit of the loop when the token is not renewable, an ERROR
// with operator-actionable text on a failed renewal (the loop goes on), and
// a counter of renewals by result.
package main

import (
	"github.com/svidagent/svidagent/sdk/goplugin"
)

func main() {
	goplugin.Serve(info, newIssuer(goplugin.Logger()))
}
