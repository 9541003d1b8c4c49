// Package spiretest runs a real SPIRE server and agent on loopback for
// integration tests.
//
// Start launches spire-server (sqlite datastore, disk key manager, join_token
// node attestor) and spire-agent (join_token node attestor, unix workload
// attestor) in a short directory under os.TempDir, waits until both report
// healthy, and registers cleanup that stops both processes and removes the
// directory. If the test failed, the processes' logs are written to the test
// log first.
//
//	s := spiretest.Start(t, spiretest.Options{
//		X509TTL: 30 * time.Second,
//		JWTTTL:  30 * time.Second,
//	})
//	s.CreateEntry(t, "spiffe://example.org/workload", spiretest.UIDSelector())
//	client, err := workloadapi.New(ctx, workloadapi.WithAddr(s.SocketAddr()))
//
// The binaries come from Options.BinDir, else $SPIRE_BIN_DIR, else the cache
// that scripts/build-spire.sh fills. A missing binary fails the test (it is
// never skipped) with the command that builds it.
//
// SPIRE agents rotate an X.509-SVID once half of its lifetime has passed. The
// server backdates NotBefore by 10s, so the lifetime is TTL+10s and an SVID
// with a 20s TTL is replaced about 5s after it was issued (plus up to one agent
// sync interval, which this package sets to 1s).
package spiretest
