# notifier.exec as a supervisor: restart and restart_backoff decode into
# exec.Config (plugins/exec/README.md).
issuer "dev" {
  trust_domain = "example.org"
}

svid "app" {
  spiffe_id = "spiffe://example.org/app"
  writer "files" {
    dir = "/run/svid"
  }
  notifier "exec" {
    cmd             = "ghostunnel"
    argv            = ["server", "--listen", "localhost:8002"]
    signal          = "SIGUSR1"
    restart         = "on-failure"
    restart_backoff = "2s"
  }
}
