package lite

import (
	"time"

	"github.com/svidagent/svidagent/hostapi/base"
)

// The conversions a notifier needs, between these messages and the types
// of hostapi/base, with the semantics of internal/wire's
// (creds/convert_test.go compares them). Those of writers and issuers,
// which parse certificates, are in package creds: a notifier links
// neither crypto/x509 nor go-spiffe.

// RotationEvent decodes a notification.
func RotationEvent(m *NotifyRequest) *base.RotationEvent {
	ev := &base.RotationEvent{
		Name: m.Name, Reason: base.Changes(m.Reason), Initial: m.Initial,
		Time: time.Unix(0, m.TimeUnixNano), Paths: m.Paths,
	}
	for _, x := range m.X509 {
		ev.X509 = append(ev.X509, base.X509Identity{
			SPIFFEID: x.SpiffeID, Serial: x.Serial,
			NotBefore: time.Unix(x.NotBefore, 0), NotAfter: time.Unix(x.NotAfter, 0), Hint: x.Hint,
		})
	}
	for _, j := range m.JWT {
		ev.JWT = append(ev.JWT, base.JWTIdentity{SPIFFEID: j.SpiffeID, Audiences: j.Audiences, Expiry: time.Unix(j.Expiry, 0), FileName: j.FileName})
	}
	return ev
}

// FieldErrors encodes validation problems.
func FieldErrors(es base.FieldErrors) []FieldError {
	out := make([]FieldError, 0, len(es))
	for _, e := range es {
		out = append(out, FieldError{Field: e.Field, Message: e.Message})
	}
	return out
}
