package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/svidagent/svidagent/hostapi"
)

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

var codeNames = map[Code]string{
	CodeOK: "OK", CodeCanceled: "CANCELLED", CodeUnknown: "UNKNOWN", CodeInvalidArgument: "INVALID_ARGUMENT",
	CodeDeadlineExceeded: "DEADLINE_EXCEEDED", CodePermissionDenied: "PERMISSION_DENIED",
	CodeResourceExhausted: "RESOURCE_EXHAUSTED", CodeFailedPrecondition: "FAILED_PRECONDITION",
	CodeUnimplemented: "UNIMPLEMENTED", CodeInternal: "INTERNAL", CodeUnavailable: "UNAVAILABLE",
}

// String returns the code's name, e.g. "UNAVAILABLE".
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("CODE(%d)", uint32(c))
}

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

// Error returns an error that the agent sees with code and msg, e.g.
// sdk.Error(sdk.CodeUnavailable, "webhook endpoint is down; check its
// health").
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
// CodeInvalidArgument for hostapi.FieldErrors, and CodeUnknown otherwise.
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
	case hostapi.AsFieldErrors(err) != nil:
		return CodeInvalidArgument
	}
	return CodeUnknown
}
