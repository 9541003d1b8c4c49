# agent-plugins.hcl: the example webhook notifier (examples/notifier-webhook)
# wired twice into one svid block, once as a WebAssembly module and once as
# a go-plugin subprocess, next to the built-in files writer.
#
# Build the plugins and pin them (paths are relative to this file):
#
#   GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared \
#       -o examples/plugins/notifier-webhook.wasm ./examples/notifier-webhook
#   go build -o examples/plugins/notifier-webhook ./examples/notifier-webhook
#   svidagent plugin hash examples/plugins/notifier-webhook.wasm
#   svidagent plugin hash examples/plugins/notifier-webhook
#
# and put the two hashes below. Check with
#   svidagent validate -config examples/agent-plugins.hcl

state_dir = "state" # WASM compile cache and pinned plugin copies, mode 0700

plugin "webhook-wasm" {
  wasm   = "plugins/notifier-webhook.wasm"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000" # svidagent plugin hash ...
  config {
    url = "http://127.0.0.1:8080/hook"
  }
  limits {
    memory  = "16MiB"
    timeout = "1s"
  }
  allow {
    hosts = ["127.0.0.1:8080"] # the only host the plugin may reach
  }
}

plugin "webhook-cmd" {
  command       = "plugins/notifier-webhook"
  sha256        = "0000000000000000000000000000000000000000000000000000000000000000" # svidagent plugin hash ...
  start_timeout = "10s"
  config {
    url = "http://127.0.0.1:8080/hook"
  }
  allow {
    hosts = ["127.0.0.1:8080"]
  }
}

issuer "spire" {
  type    = "workloadapi"
  address = "unix:///tmp/spire-agent/public/api.sock"
}

svid "web" {
  writer "files" {
    dir = "out/web"
  }
  notifier "webhook-wasm" {}
  notifier "webhook-cmd" {
    on = ["x509", "jwt_bundle"]
  }
}
