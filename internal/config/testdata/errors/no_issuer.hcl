svid "web" {
  writer "files" { dir = "/run/web" }
}
