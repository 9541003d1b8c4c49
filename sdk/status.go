package sdk

import "github.com/svidagent/svidagent/sdk/core"

// Code is a status code of host API v1: the gRPC codes listed in
// hostapi/ABI.md. Both runtimes report a plugin's errors with them.
type Code = core.Code

// The codes a plugin may return. A plain error is reported as CodeUnknown;
// use [Error] or [Errorf] to choose.
const (
	CodeOK                 = core.CodeOK
	CodeCanceled           = core.CodeCanceled
	CodeUnknown            = core.CodeUnknown
	CodeInvalidArgument    = core.CodeInvalidArgument
	CodeDeadlineExceeded   = core.CodeDeadlineExceeded
	CodePermissionDenied   = core.CodePermissionDenied
	CodeResourceExhausted  = core.CodeResourceExhausted
	CodeFailedPrecondition = core.CodeFailedPrecondition
	CodeUnimplemented      = core.CodeUnimplemented
	CodeInternal           = core.CodeInternal
	CodeUnavailable        = core.CodeUnavailable
)

// Error returns an error that the agent sees with code and msg, e.g.
// sdk.Error(sdk.CodeUnavailable, "webhook endpoint is down; check its
// health").
func Error(code Code, msg string) error { return core.Error(code, msg) }

// Errorf is Error with a formatted message; a %w verb wraps its operand as
// fmt.Errorf does.
func Errorf(code Code, format string, args ...any) error {
	return core.Errorf(code, format, args...)
}

// CodeOf returns the code the agent sees for err: CodeOK for nil, the code
// of the outermost error made by [Error] or [Errorf] in err's chain,
// CodeDeadlineExceeded and CodeCanceled for the context's errors,
// CodeInvalidArgument for hostapi.FieldErrors, and CodeUnknown otherwise.
func CodeOf(err error) Code { return core.CodeOf(err) }
