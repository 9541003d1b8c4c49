issuer "spire" { type = "workloadapi" }
issuer "dev" {}
svid "web" {
  writer "files" { dir = "/run/web" }
}
