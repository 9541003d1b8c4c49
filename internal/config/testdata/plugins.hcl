state_dir = "state"

plugin "webhook" {
  wasm   = "plugins/notifier-webhook.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  config {
    url     = "http://127.0.0.1:8080/hook"
    retries = 3
    tags    = ["a", "b"]
    headers {
      authorization = "Bearer x"
    }
  }
  limits {
    memory    = "16MiB"
    timeout   = "1s"
    max_reply = "1MiB"
  }
  allow {
    hosts = ["127.0.0.1:8080"]
  }
  start_timeout = "3s"
}

plugin "webhook-cmd" {
  command       = "/usr/libexec/svidagent/notifier-webhook"
  sha256        = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"
  start_timeout = "5s"
  config {
    url = "http://127.0.0.1:8080/hook2"
  }
}

plugin "vault" {
  command                = "plugins/issuer-vault"
  insecure_skip_checksum = true
}

plugin "secrets" {
  wasm   = "plugins/writer-secrets.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  allow {
    write_dir = "/run/out"
  }
}

issuer "vault" {
  type = "vault"
}

svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
  writer "secrets" {}
  notifier "webhook" {
    on      = ["x509", "jwt_svid"]
    timeout = "2s"
  }
  notifier "webhook-cmd" {}
}

svid "api" {
  spiffe_id = "spiffe://example.org/api"
  writer "files" {
    dir = "out-api"
  }
  notifier "webhook" {}
}
