plugin "hook" {
  wasm   = "hook.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  start_timeout = "20s"
  limits {
    memory    = "64MiB"
    timeout   = "3s"
    max_reply = 8388608
  }
}
plugin "w" {
  wasm   = "w.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  limits {
    timeout = "5s"
    memory  = "lots"
  }
  allow {
    hosts = ["example.com"]
  }
}
plugin "sub" {
  command = "sub-plugin"
  sha256  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  limits {
    memory = "32GiB"
  }
}
plugin "sub2" {
  command = "sub-plugin"
  sha256  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  limits {
    memory = "2GiB"
  }
}
issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "w" {}
  notifier "hook" {}
  notifier "sub" {}
  notifier "sub2" {}
}
