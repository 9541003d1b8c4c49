// Package fakeworkloadapi is a fake SPIFFE Workload API for tests. It is a
// real gRPC server on a unix socket that implements the exported
// go-spiffe proto service, so clients under test dial, stream, retry and
// reconnect exactly as they would against a SPIRE agent. Like an agent it
// rejects calls that lack the "workload.spiffe.io: true" metadata header,
// and it answers PermissionDenied "no identity issued" while it has nothing
// to serve.
//
// Tests set what it serves, push changes to every open stream, inject
// errors, and simulate an agent outage on the same socket path. Every push
// and call is counted, and the Wait methods block on those counters, so
// tests never sleep:
//
//	srv := fakeworkloadapi.New(t)
//	ca := testca.New(t, td)
//	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, id)}, x509bundle.NewSet(ca.X509Bundle()))
//	client, _ := workloadapi.New(ctx, workloadapi.WithAddr(srv.Addr()))
//	...
//	srv.SetX509(...) // rotate: every open FetchX509SVID stream receives it
//	err := srv.WaitSent(ctx, fakeworkloadapi.FetchX509SVID, 2)
//
// It is test machinery, not a public API.
package fakeworkloadapi
