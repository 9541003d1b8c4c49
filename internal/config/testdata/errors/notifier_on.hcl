issuer "dev" {}
svid "web" {
  writer "files" { dir = "/run/web" }
  notifier "exec" {
    cmd = "/bin/true"
    on  = ["x5O9", "jwt_svid"]
  }
  notifier "exec" {
    cmd = "/bin/true"
    on  = []
  }
}
