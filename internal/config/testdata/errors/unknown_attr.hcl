issuer "dev" {}
svid "web" {
  spiffeid = "spiffe://example.org/web"
  writer "files" {
    dirr = "/run/web"
  }
}
