issuer "dev" {}
svid "web" {
  writer "files" { dir = "/run/web" }
}
health {
  address        = "8081"
  readiness_path = "ready"
}
