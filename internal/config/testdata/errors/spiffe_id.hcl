issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://Example.org/web"
  writer "files" { dir = "/run/web" }
}
svid "api" {
  spiffe_id = "https://example.org/api"
  writer "files" { dir = "/run/api" }
}
