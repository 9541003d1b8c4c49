plugin "files" {
  wasm   = "files.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}
plugin "hook" {
  wasm   = "hook.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}
plugin "hook" {
  wasm   = "hook2.wasm"
  sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}
issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
  notifier "hook" {
    timeout = "1s"
    url     = "http://example.com"
  }
}
