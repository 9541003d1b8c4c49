issuer "dev" {}
issuer "dev" { trust_domain = "other.org" }
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" { dir = "/run/web" }
}
svid "web" {
  writer "files" { dir = "/run/web2" }
}
