# svidagent configuration for the Kubernetes examples (native agent.hcl
# schema). The manifests' ConfigMaps hold this file verbatim; a test checks
# they do.

# The SPIFFE CSI driver mounts the SPIRE agent's Workload API socket
# directory read-only at /spiffe-workload-api (see the manifests).
issuer "spire" {
  type    = "workloadapi"
  address = "unix:///spiffe-workload-api/spire-agent.sock"
}

# The pod's identity, delivered as a SPIFFE Filesystem Delivery credential
# folder on a memory-backed emptyDir shared with the application, which
# finds it through SPIFFE_CREDENTIAL_FOLDER=/run/svid.
svid "app" {
  writer "files" {
    dir    = "/run/svid"
    layout = "spiffe-fs"
  }
}

# Used only when a plugin block loads an external (WASM or command) plugin;
# the built-in plugins above never write here. An emptyDir is mounted there
# so that the root filesystem can stay read-only.
state_dir = "/var/lib/svidagent"

# The kubelet probes the pod IP, so listen on every interface. The probes
# in the manifests use this port and these paths; a test checks they match.
health {
  enabled        = true
  address        = ":8081"
  liveness_path  = "/live"
  readiness_path = "/ready"
}
