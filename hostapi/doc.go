// Package hostapi is the contract between the svidagent core and its
// plugins: issuers (where credentials come from), writers (how they are
// delivered) and notifiers (how consumers learn of a rotation).
//
// The Go interfaces in this package are the one set of interfaces that every
// runtime implements: built-in plugins implement them directly, and the WASM
// and subprocess runtimes adapt their wire protocols onto them, so the core
// never knows which runtime a plugin uses.
//
// Every plugin implements exactly one of [Issuer], [Writer] or [Notifier],
// and may implement the optional capability interfaces [Watcher],
// [Lifecycle] and [io.Closer]; the core feature-detects them by type
// assertion.
//
// What a plugin and the agent share below these interfaces (the WASM
// envelopes, the method names, the go-plugin handshake) is in package
// hostapi/v1/abi; [SelectX509] and [X509Index] are the one definition of
// how an IssueRequest selects X509-SVIDs.
//
// The types a notifier sees, the plugin kinds, Lifecycle and the field
// errors are declared in hostapi/base and aliased here: a plugin may name
// them through either package (hostapi.RotationEvent is base.RotationEvent).
// base imports no go-spiffe and no crypto/x509, which is what keeps a
// notifier module small (sdk/notifier).
//
// This package only grows: a field or an optional interface may be added,
// nothing is renamed or removed. A breaking change is a new package beside
// this one.
//
// A minimal notifier:
//
//	type logNotifier struct{ w io.Writer }
//
//	func (n logNotifier) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
//		for _, id := range ev.X509 {
//			fmt.Fprintf(n.w, "%s rotated, serial %s, expires %s\n", id.SPIFFEID, id.Serial, id.NotAfter)
//		}
//		return nil
//	}
package hostapi
