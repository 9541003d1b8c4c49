issuer "dev" {
  trust_domain = "example.org"
}

svid "web" {
  writer "files" {
    dir = "out"
  }
}
