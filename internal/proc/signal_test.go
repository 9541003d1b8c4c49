//go:build unix

package proc_test

import (
	"strings"
	"syscall"
	"testing"

	"github.com/svidagent/svidagent/internal/proc"
	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    syscall.Signal
		wantErr string
	}{
		{name: "spiffe-helper form", in: "SIGUSR1", want: syscall.SIGUSR1},
		{name: "hup", in: "SIGHUP", want: syscall.SIGHUP},
		{name: "without prefix", in: "USR2", want: syscall.SIGUSR2},
		{name: "lower case", in: "sigterm", want: syscall.SIGTERM},
		{name: "mixed case without prefix", in: "Hup", want: syscall.SIGHUP},
		{name: "surrounding space", in: " SIGINT ", want: syscall.SIGINT},
		{name: "unknown", in: "SIGFOO", wantErr: `parsing signal "SIGFOO": unknown name; use one of SIGHUP, SIGINT`},
		{name: "number", in: "10", wantErr: "unknown name"},
		{name: "empty", in: "", wantErr: "the name is empty; use one of SIGHUP"},
		{name: "prefix only", in: "SIG", wantErr: "unknown name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proc.ParseSignal(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSignal(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// Every name spiffe-helper accepts (unix.SignalNum) is accepted, as is.
func TestParseSignalAcceptsSpiffeHelperNames(t *testing.T) {
	names := proc.SignalNames()
	if len(names) < 20 {
		t.Fatalf("SignalNames() = %v, want the platform's list", names)
	}
	for _, n := range names {
		want := unix.SignalNum(n)
		got, err := proc.ParseSignal(n)
		if err != nil || got != want || want == 0 {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", n, got, err, want)
		}
	}
}
