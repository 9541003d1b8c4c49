package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

func TestCodeOf(t *testing.T) {
	base := errors.New("base")
	tests := []struct {
		name string
		err  error
		want sdk.Code
	}{
		{"nil", nil, sdk.CodeOK},
		{"plain", base, sdk.CodeUnknown},
		{"coded", sdk.Error(sdk.CodeUnavailable, "down"), sdk.CodeUnavailable},
		{"wrapped coded", fmt.Errorf("posting: %w", sdk.Error(sdk.CodeResourceExhausted, "big")), sdk.CodeResourceExhausted},
		{"outermost wins", sdk.Errorf(sdk.CodeInternal, "x: %w", sdk.Error(sdk.CodeUnavailable, "y")), sdk.CodeInternal},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), sdk.CodeDeadlineExceeded},
		{"canceled", context.Canceled, sdk.CodeCanceled},
		{"field errors", hostapi.FieldErrors{{Field: "url", Message: "required"}}, sdk.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sdk.CodeOf(tt.err); got != tt.want {
				t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorf(t *testing.T) {
	err := sdk.Errorf(sdk.CodeUnavailable, "posting: %w", context.DeadlineExceeded)
	if err.Error() != "posting: context deadline exceeded" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Errorf = %q, does not wrap", err)
	}
	if !errors.Is(sdk.Error(sdk.CodePermissionDenied, "no"), sdk.ErrNotAllowed) {
		t.Error("PERMISSION_DENIED does not match ErrNotAllowed")
	}
	if errors.Is(sdk.Error(sdk.CodeUnavailable, "no"), sdk.ErrNotAllowed) {
		t.Error("UNAVAILABLE matches ErrNotAllowed")
	}
	if s := sdk.Code(99).String(); s != "CODE(99)" || sdk.CodeUnavailable.String() != "UNAVAILABLE" {
		t.Errorf("String = %q", s)
	}
}

type host struct{ sdk.Host }

func TestHostFromContext(t *testing.T) {
	h := sdk.HostFromContext(context.Background())
	if h == nil {
		t.Fatal("HostFromContext returned nil")
	}
	h.Log(slog.LevelInfo, "dropped")
	if _, err := h.HTTP(context.Background(), &sdk.HTTPRequest{URL: "http://x"}); !errors.Is(err, sdk.ErrNotAllowed) {
		t.Errorf("HTTP without a host = %v", err)
	}
	want := host{}
	if got := sdk.HostFromContext(sdk.WithHost(context.Background(), want)); got != want {
		t.Errorf("HostFromContext = %v, want the host set", got)
	}
	if got := sdk.HostFromContext(sdk.WithHost(context.Background(), nil)); got == nil {
		t.Error("HostFromContext of a nil host is nil")
	}
}
