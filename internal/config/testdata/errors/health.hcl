issuer "dev" {}
svid "web" {
  spiffe_id = "spiffe://example.org/web"
  writer "files" { dir = "/run/web" }
}
health {
  address        = "8081"
  readiness_path = "ready"
}
