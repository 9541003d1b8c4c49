cert_dir = "certs"
issuer "dev" {}
svid "web" {
  writer "files" { dir = "/run/web" }
}
health_checks {
  listener_enabled = true
}
