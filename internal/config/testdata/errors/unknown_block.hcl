issuer "dev" {}
svid "web" {
  writer "files" { dir = "/run/web" }
}
helth {
  enabled = true
}
