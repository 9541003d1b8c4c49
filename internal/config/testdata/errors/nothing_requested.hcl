issuer "dev" {}
svid "web" {
  x509 = false
  writer "files" { dir = "/run/web" }
}
