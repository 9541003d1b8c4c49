issuer "dev" {}
svid "web" {
  writer "testcheck" {
    level = 7
  }
  writer "testcheck" {
    path = "opaque"
  }
}
