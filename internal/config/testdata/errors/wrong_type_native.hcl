issuer "dev" {}
svid "web" {
  x509 = "yes please"
  writer "files" {
    dir = ["/run/web"]
  }
}
