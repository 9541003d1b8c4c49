daemon_mode   = false
fetch_timeout = "2m"

issuer "local" {
  type         = "dev"
  trust_domain = "test.local"
}
issuer "spire" {
  type    = "workloadapi"
  address = "unix:///run/spire/agent.sock"
}

svid "frontend" {
  issuer         = "spire"
  hint           = "frontend"
  renew_fraction = 0.75
  writer "files" {
    dir            = "/run/a"
    layout         = "data"
    cert_file_mode = 0644
    key_file_mode  = "0640"
    jwt_bundle_file_name = "bundle.json"
  }
  writer "files" {
    dir            = "/run/b"
    cert_file_mode = 0444
  }
  notifier "signal" {
    pid_file = "/run/a.pid"
    signal   = "HUP"
  }
  notifier "signal" {
    on       = ["x509", "jwt_bundle"]
    timeout  = "3s"
    pid_file = "/run/b.pid"
    signal   = "SIGUSR2"
  }
}

svid "backend" {
  issuer    = "local"
  spiffe_id = "spiffe://test.local/backend"
  all       = true
  ttl       = "5m"
  writer "files" {
    dir = "/run/backend"
  }
}

health {
  enabled = true
  address = ":9000"
}
