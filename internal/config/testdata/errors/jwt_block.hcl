issuer "dev" {}
svid "web" {
  jwt {
    file_name = "api.token"
  }
  jwt {
    audience = "db"
  }
  writer "files" { dir = "/run/web" }
}
