// Package workloadapi is the issuer.workloadapi plugin: it gets X509-SVIDs,
// JWT-SVIDs and bundles from a SPIFFE Workload API (a SPIRE agent), using
// go-spiffe's client. It is the successor of spiffe-helper's agent
// connection.
//
// The issuer is both a [hostapi.Issuer] (one-shot fetches, and the core's
// JWT-SVID refreshes) and a [hostapi.Watcher] (the X.509 context and JWT
// bundle streams, which the agent pushes). It selects among the X509-SVIDs
// the agent offers by SPIFFE ID, then hint, else takes the first; it never
// verifies chains (the core does) and never schedules itself (the core
// does). Unlike spiffe-helper, one-shot JWT-SVID fetches keep their extra
// audiences.
//
// Built-in plugins register in init; the host builds this one from agent.hcl:
//
//	issuer "spire" {
//	  type    = "workloadapi"
//	  address = "unix:///run/spire/sockets/agent.sock"
//	}
//
// or directly:
//
//	iss, err := workloadapi.New(&workloadapi.Config{Address: "/run/spire/sockets/agent.sock"}, logger)
//	defer iss.Close()
//	creds, err := iss.Issue(ctx, &hostapi.IssueRequest{X509: true})
package workloadapi
