issuer "dev" {}
svid "web" {
  jwt_bundles = false
  writer "files" {
    dir                  = "/run/web"
    jwt_bundle_file_name = "bundle.json"
  }
}
