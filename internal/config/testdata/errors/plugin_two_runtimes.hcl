plugin "hook" {
  wasm    = "hook.wasm"
  command = "hook"
  sha256  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}
issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
  notifier "hook" {}
}
