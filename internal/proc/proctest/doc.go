// Package proctest runs real child processes for the tests of proc and of
// the notifiers: the test binary re-executes itself as a child that reports
// what happens to it (start, each signal) as lines on a FIFO, so that tests
// wait for events instead of sleeping.
//
//	func TestMain(m *testing.M) {
//		proctest.MaybeRunChild() // never returns in a child
//		os.Exit(m.Run())
//	}
//
//	ev := proctest.NewEvents(t)
//	cmd, env := proctest.Command(ev, proctest.ModeServe)
//	... start cmd with env ...
//	start := ev.Next(t, "start")
//
// It is test machinery, not a public API.
package proctest
