// Package kubernetes holds no code: it is the module of the Kubernetes
// example manifests' validation test. The test decodes every manifest
// strictly into its typed Kubernetes object (unknown fields are errors)
// and checks the invariants the examples promise: probes on the agent's
// configured health port and paths, credentials on a memory-backed
// emptyDir, the SPIFFE CSI driver mounted read-only, securityContext
// hardening, and ConfigMaps that mirror config/agent.hcl and
// config/helper.conf (which the root module's examples test loads with the
// real configuration loader).
//
// It is a separate module so that k8s.io/api stays out of the root go.mod.
// Run it with:
//
//	cd examples/kubernetes && go test ./...
package kubernetes
