// Package base holds the part of host API v1 that needs nothing beyond
// the standard library's basics: the plugin kinds, what a notifier sees
// (the rotation event), the optional lifecycle, and the field errors that
// every plugin reports. Package hostapi declares each of these names as an
// alias of the one here, so hostapi.RotationEvent and base.RotationEvent
// are the same type and either import path may be used.
//
// It exists for small plugins: importing hostapi links go-spiffe and
// crypto/x509 into a module (1.4 MB of a WebAssembly guest), importing
// base links none of them. A notifier built with sdk/notifier uses only
// this package.
//
// Like hostapi, this package only grows.
package base

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Kind is the kind of a plugin.
type Kind string

const (
	KindIssuer   Kind = "issuer"
	KindWriter   Kind = "writer"
	KindNotifier Kind = "notifier"
)

// Changes is the set of credential parts that changed in an update.
type Changes uint8

const (
	// ChangedX509 is set when an X509-SVID or an X.509 bundle changed.
	ChangedX509 Changes = 1 << iota
	// ChangedJWTSVID is set when a JWT-SVID was renewed.
	ChangedJWTSVID
	// ChangedJWTBundle is set when a JWT bundle changed.
	ChangedJWTBundle
)

// Has reports whether any of o is in c.
func (c Changes) Has(o Changes) bool { return c&o != 0 }

// String returns the names of the set's members, comma separated.
func (c Changes) String() string {
	var parts []string
	if c.Has(ChangedX509) {
		parts = append(parts, "x509")
	}
	if c.Has(ChangedJWTSVID) {
		parts = append(parts, "jwt_svid")
	}
	if c.Has(ChangedJWTBundle) {
		parts = append(parts, "jwt_bundle")
	}
	return strings.Join(parts, ",")
}

// ParseChange returns the Changes named by s: "x509", "jwt_svid" or
// "jwt_bundle".
func ParseChange(s string) (Changes, bool) {
	switch s {
	case "x509":
		return ChangedX509, true
	case "jwt_svid":
		return ChangedJWTSVID, true
	case "jwt_bundle":
		return ChangedJWTBundle, true
	}
	return 0, false
}

// X509Identity describes one delivered X509-SVID, without its key.
type X509Identity struct {
	SPIFFEID  string
	Serial    string // hexadecimal, lowercase
	NotBefore time.Time
	NotAfter  time.Time
	Hint      string
}

// JWTIdentity describes one delivered JWT-SVID, without the token.
type JWTIdentity struct {
	SPIFFEID  string
	Audiences []string
	Expiry    time.Time
	FileName  string
}

// RotationEvent tells a notifier that credentials were delivered. It never
// carries key material or tokens.
type RotationEvent struct {
	// Name is the svid block's name.
	Name string
	// Reason says which parts changed.
	Reason Changes
	// Initial is set on the first delivery after the agent started.
	Initial bool
	// Time is when the writers finished.
	Time time.Time
	X509 []X509Identity
	JWT  []JWTIdentity
	// Paths are the paths the writers reported.
	Paths []string
}

// Notifier tells consumers about a rotation. Notify runs after every writer
// of the svid block finished, with a deadline; notifiers run concurrently
// and a slow one delays no other.
type Notifier interface {
	Notify(ctx context.Context, ev *RotationEvent) error
}

// Lifecycle is an optional capability of a plugin that runs background work
// (a token renewal loop, say). Start must not block: it starts the work and
// returns; an error means nothing was started. Stop blocks until the work
// has exited, and is safe to call more than once or without Start.
type Lifecycle interface {
	Start(ctx context.Context) error
	Stop()
}

// FieldError is a problem with one configuration field that a user can act
// on. The core maps Field to the attribute's file:line:col.
type FieldError struct {
	// Field is the attribute's name in the plugin's configuration block,
	// for example "renew_signal". Nested fields are dot separated.
	Field string
	// Message says what is wrong and how to fix it.
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors collects the problems of one configuration.
type FieldErrors []*FieldError

// Add appends a problem with field.
func (es *FieldErrors) Add(field, message string) {
	*es = append(*es, &FieldError{Field: field, Message: message})
}

// Err returns es as an error, or nil when it is empty.
func (es FieldErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// AsFieldErrors returns the field errors in err, if any.
func AsFieldErrors(err error) FieldErrors {
	var es FieldErrors
	if errors.As(err, &es) {
		return es
	}
	var e *FieldError
	if errors.As(err, &e) {
		return FieldErrors{e}
	}
	return nil
}
