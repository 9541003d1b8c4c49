# An unknown key must not hide the value errors elsewhere in the file.
daemon_modus = true
issuer "dev" {}
svid "web" {
  spiffe_id  = "spiffe://example.org/web"
  renew_frac = 0.5
  writer "files" {
    dir = "/run/web"
  }
}
svid "api" {
  spiffe_id      = "not a spiffe id"
  renew_fraction = 2
  writer "files" {
    dir = "/run/api"
  }
}
health {
  enabled  = true
  adress   = "127.0.0.1:8081"
  liveness_path = "live"
}
