package hostapi

import "github.com/svidagent/svidagent/hostapi/base"

// FieldError is a problem with one configuration field that a user can act
// on. The core maps Field to the attribute's file:line:col.
type FieldError = base.FieldError

// FieldErrors collects the problems of one configuration.
type FieldErrors = base.FieldErrors

// AsFieldErrors returns the field errors in err, if any.
func AsFieldErrors(err error) FieldErrors { return base.AsFieldErrors(err) }
