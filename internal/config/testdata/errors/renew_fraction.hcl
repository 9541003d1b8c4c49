issuer "dev" {}
svid "web" {
  renew_fraction = 1.5
  writer "files" { dir = "/run/web" }
}
svid "api" {
  renew_fraction = 0
  writer "files" { dir = "/run/api" }
}
