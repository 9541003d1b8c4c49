plugin "hook" {
  wasm   = "hook.wasm"
  sha256 = "deadbeef"
}
plugin "nosum" {
  command = "nosum"
}
issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" {
    dir = "out"
  }
  notifier "hook" {}
  notifier "nosum" {}
}
