daemon_mode   = true
fetch_timeout = "30s"

issuer "dev" {
  type         = "dev"
  trust_domain = "example.org"
  ttl          = "10s"
}
issuer "spire" {
  type    = "workloadapi"
  address = "unix:///run/spire/sockets/agent.sock"
}

svid "web" {
  issuer         = "dev"
  spiffe_id      = "spiffe://example.org/web"
  hint           = ""
  all            = false
  x509           = true
  ttl            = "1m"
  renew_fraction = 0.5
  jwt_bundles    = true
  jwt {
    audience        = "api"
    extra_audiences = ["x", "y"]
    file_name       = "api.token"
  }
  writer "files" {
    dir = "./out/web"
  }
  notifier "signal" {
    on       = ["x509"]
    timeout  = "10s"
    pid_file = "/run/app.pid"
    signal   = "SIGHUP"
  }
  notifier "exec" {
    cmd    = "/usr/bin/app"
    args   = "--reload"
    signal = "SIGUSR1"
  }
}

health {
  enabled        = true
  address        = "127.0.0.1:8081"
  liveness_path  = "/live"
  readiness_path = "/ready"
}
