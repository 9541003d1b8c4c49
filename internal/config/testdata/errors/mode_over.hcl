issuer "dev" {}
svid "web" {
  writer "files" {
    dir           = "/run/web"
    key_file_mode = 600
  }
}
