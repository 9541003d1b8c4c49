package abi

import "strings"

// Names of the WASM ABI v1 (hostapi/ABI.md §2 and §5).
const (
	// ExportMarker is the export that marks a module as speaking ABI v1.
	// The host checks it before it runs any guest code.
	ExportMarker = "svidagent_abi_v1"
	// MarkerPrefix starts every ABI marker export: svidagent_abi_v<N>.
	MarkerPrefix = "svidagent_abi_"
	// ExportAlloc, ExportFree and ExportCall are the guest's entry points.
	ExportAlloc = "svidagent_alloc"
	ExportFree  = "svidagent_free"
	ExportCall  = "svidagent_call"
	// HostModule is the import module of the host services.
	HostModule = "svidagent_host_v1"
)

// The go-plugin handshake of subprocess plugins (hostapi/ABI.md §8).
// Host and plugin build their plugin.HandshakeConfig from these; this
// package does not import go-plugin, so that a WASM guest links none of
// it.
const (
	GoPluginProtocolVersion  = 1
	GoPluginMagicCookieKey   = "SVIDAGENT_PLUGIN"
	GoPluginMagicCookieValue = "v1"
	// GoPluginName is the one entry of the go-plugin plugin set both
	// sides use.
	GoPluginName = "svidagent"
)

// Method returns a full method name in the form of the WASM envelope, without
// gRPC's leading "/": "svidagent.plugin.notifier.v1.Notifier/Notify".
// Names already in that form are returned as they are.
func Method(fullMethod string) string { return strings.TrimPrefix(fullMethod, "/") }

// CapabilityIssuerReturnsKeys is the capability (DescribeResponse's
// capabilities) an issuer declares to return its own private keys instead
// of signing the core's CSR.
const CapabilityIssuerReturnsKeys = "issuer.returns_keys"
