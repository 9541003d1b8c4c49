// Package core holds what every plugin SDK shares and that needs nothing
// beyond the standard library's basics: a plugin's Info, its
// configuration interface, and the status codes its errors carry.
//
// Plugin code does not need to import it: package sdk declares each name
// as an alias of the one here (sdk.Info is core.Info), and so does the
// small sdk/notifier. It is a package of its own so that a notifier built
// with sdk/notifier links neither net/http nor go-spiffe, which package
// sdk imports.
package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/svidagent/svidagent/hostapi/base"
)

// Info describes a plugin to the agent: it is the plugin's answer to
// Describe.
type Info struct {
	// Name is the plugin's name, e.g. "notifier-webhook". Required.
	Name string
	// Version is the plugin's own version, e.g. "1.2.0".
	Version string
	// Capabilities are optional capabilities the plugin claims, e.g.
	// "issuer.returns_keys" (see DescribeResponse in
	// hostapi/proto/svidagent/plugin/v1/plugin.proto).
	Capabilities []string
	// ExampleConfigJSON is an example of a valid config block, as JSON,
	// e.g. `{"url":"https://hooks.example.com/rotated"}`: what the
	// plugin's README shows. `svidagent conformance` runs with it when it
	// is given no config, so it must pass the plugin's own Validate and
	// need nothing a test does not provide. Optional; it must be valid
	// JSON when set.
	ExampleConfigJSON []byte
}

// Configurer is implemented by plugins that take configuration: the plugin
// block's config {} body, as JSON.
//
// Validate reports problems a user can act on, without applying anything;
// Field names the attribute ("url", "headers.x-token"). Configure applies a
// config that passed Validate; it may be called again with a new config and
// must then behave as if only the new one had been applied. A plugin that
// implements Configurer is not called for its kind's method until Configure
// succeeded. Configure is never concurrent with other calls of the plugin.
type Configurer interface {
	Validate(configJSON []byte) base.FieldErrors
	Configure(ctx context.Context, configJSON []byte) error
}

// Code is a status code of host API v1: the gRPC codes listed in
// hostapi/ABI.md. Both runtimes report a plugin's errors with them.
type Code uint32

// The codes a plugin may return. A plain error is reported as CodeUnknown;
// use [Error] or [Errorf] to choose.
const (
	CodeOK                 Code = 0
	CodeCanceled           Code = 1
	CodeUnknown            Code = 2
	CodeInvalidArgument    Code = 3
	CodeDeadlineExceeded   Code = 4
	CodePermissionDenied   Code = 7
	CodeResourceExhausted  Code = 8
	CodeFailedPrecondition Code = 9
	CodeUnimplemented      Code = 12
	CodeInternal           Code = 13
	CodeUnavailable        Code = 14
)

// String returns the code's name, e.g. "UNAVAILABLE".
func (c Code) String() string {
	switch c {
	case CodeOK:
		return "OK"
	case CodeCanceled:
		return "CANCELLED"
	case CodeUnknown:
		return "UNKNOWN"
	case CodeInvalidArgument:
		return "INVALID_ARGUMENT"
	case CodeDeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case CodePermissionDenied:
		return "PERMISSION_DENIED"
	case CodeResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case CodeFailedPrecondition:
		return "FAILED_PRECONDITION"
	case CodeUnimplemented:
		return "UNIMPLEMENTED"
	case CodeInternal:
		return "INTERNAL"
	case CodeUnavailable:
		return "UNAVAILABLE"
	}
	return fmt.Sprintf("CODE(%d)", uint32(c))
}

// ErrNotAllowed is matched (errors.Is) by the error of a host service that
// the plugin was not granted, or of a request the grant does not cover (an
// HTTP host outside the plugin's allow list).
var ErrNotAllowed = errors.New("not allowed by the plugin's grant")

// statusError is an error with a code.
type statusError struct {
	code Code
	msg  string
	err  error // wrapped, may be nil
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.err }

// Is makes a PERMISSION_DENIED error match ErrNotAllowed.
func (e *statusError) Is(target error) bool {
	return target == ErrNotAllowed && e.code == CodePermissionDenied
}

// Error returns an error that the agent sees with code and msg.
func Error(code Code, msg string) error {
	return &statusError{code: code, msg: msg}
}

// Errorf is Error with a formatted message; a %w verb wraps its operand as
// fmt.Errorf does.
func Errorf(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &statusError{code: code, msg: err.Error(), err: errors.Unwrap(err)}
}

// CodeOf returns the code the agent sees for err: CodeOK for nil, the code
// of the outermost error made by [Error] or [Errorf] in err's chain,
// CodeDeadlineExceeded and CodeCanceled for the context's errors,
// CodeInvalidArgument for base.FieldErrors, and CodeUnknown otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.code
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case base.AsFieldErrors(err) != nil:
		return CodeInvalidArgument
	}
	return CodeUnknown
}
