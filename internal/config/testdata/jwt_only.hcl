issuer "spire" {
  type = "workloadapi"
}

svid "tokens" {
  x509 = false
  jwt {
    audience  = "api"
    file_name = "api.token"
  }
  jwt {
    audience        = "db"
    extra_audiences = ["db-replica"]
    file_name       = "db.token"
  }
  writer "files" {
    dir                = "/run/tokens"
    jwt_svid_file_mode = 0640
  }
  notifier "exec" {
    cmd  = "/usr/local/bin/reload-tokens"
    on   = ["jwt_svid", "jwt_bundle"]
  }
}
