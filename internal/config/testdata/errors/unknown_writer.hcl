issuer "spire" { type = "workloadapi" }
svid "web" {
  writer "file" {
    dir = "/run/web"
  }
}
