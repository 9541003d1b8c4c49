issuer "dev" {}
svid "web" {
  notifier "signal" {
    pid_file = "/run/web.pid"
    signal   = "SIGHUP"
  }
}
