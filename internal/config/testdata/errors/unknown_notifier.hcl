issuer "workloadapi" {}
svid "web" {
  writer "files" { dir = "/run/web" }
  notifier "pid" {
    pid_file = "/run/web.pid"
  }
}
