# svidagent configuration for examples/systemd/svidagent.service; install it
# as /etc/svidagent/agent.hcl (the unit's ExecStart). A test loads it and
# checks it against the unit.

# The SPIRE agent's Workload API socket. PrivateTmp=yes in the unit hides
# the host's /tmp, so SPIRE's default /tmp/spire-agent/public/api.sock is
# out of reach: set the SPIRE agent's socket_path outside /tmp, as here.
issuer "spire" {
  type    = "workloadapi"
  address = "unix:///run/spire/sockets/agent.sock"
}

# Credentials go to the unit's RuntimeDirectory, a tmpfs (/run/svidagent):
# they never reach the disk and vanish when the service stops. A consumer
# in the svidagent group reads them (the key's group bit below).
svid "web" {
  spiffe_id = "spiffe://example.org/web"

  writer "files" {
    dir           = "/run/svidagent/web"
    layout        = "data"
    key_file_mode = 0640
  }

  # The consumer watches the files (the data layout swaps them as one
  # set). To signal it instead, see plugins/signal/README.md: the signalled
  # process must run as this service's user, since the unit withholds
  # CAP_KILL.
}

# state_dir is left unset: the agent uses $STATE_DIRECTORY, which the
# unit's StateDirectory=svidagent sets to /var/lib/svidagent.

health {
  enabled = true
  address = "127.0.0.1:8081"
}
