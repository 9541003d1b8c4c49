issuer "spire" {
  type = "workload_api"
}
issuer "vault" {}
svid "web" {
  issuer = "spire"
  writer "files" { dir = "/run/web" }
}
