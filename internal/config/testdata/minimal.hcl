# The least an agent.hcl needs: one issuer (type from its label) and one
# svid with a writer. Everything else takes its default.
issuer "workloadapi" {}

svid "app" {
  writer "files" {
    dir = "/run/svid"
  }
}
