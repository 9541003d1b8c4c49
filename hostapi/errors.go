package hostapi

import (
	"errors"
	"strings"
)

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
