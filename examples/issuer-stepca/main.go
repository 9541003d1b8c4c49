// Command issuer-stepca is a svidagent issuer plugin, run as a go-plugin
// subprocess, that issues X509-SVIDs from a smallstep step-ca. It sends the
// CSR the agent generated (the key never leaves the agent) to step-ca's
// POST /1.0/sign, authorised by a one-time token (OTT) that it signs with a
// JWK provisioner's private key: iss = the provisioner's name, aud =
// <ca_url>/1.0/sign, sub = the SPIFFE ID, sans = [the SPIFFE ID], a fresh
// jti, five minutes of validity, and sha = the root's SHA-256 fingerprint.
// The chain step-ca returns is checked (the requested SPIFFE ID, the CSR's
// key, verification against the configured root) before it is handed back.
package main

import "github.com/svidagent/svidagent/sdk/goplugin"

func main() { goplugin.Serve(info, &issuer{}) }
