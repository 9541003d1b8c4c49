# Sample configuration used by `make run`. It needs no SPIRE: the dev issuer
# is an in-memory CA (NOT FOR PRODUCTION) that issues short-lived SVIDs, so
# you can watch rotations happen every few seconds in ./out/.

issuer "dev" {
  trust_domain = "example.org"
  ttl          = "10s"
}

svid "web" {
  spiffe_id = "spiffe://example.org/web"

  jwt {
    audience  = "api.example.org"
    file_name = "jwt_svid.token"
  }

  writer "files" {
    dir                  = "./out/web"
    jwt_bundle_file_name = "jwt_bundle.json"
  }

  writer "files" {
    dir    = "./out/web-spiffe-fs"
    layout = "spiffe-fs"
  }
}

health {
  enabled = true
  address = "127.0.0.1:8081"
}
