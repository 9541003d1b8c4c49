issuer "spire" { type = "workloadapi" }
issuer "dev" {}
svid "web" {
  issuer = "spir"
  writer "files" { dir = "/run/web" }
}
