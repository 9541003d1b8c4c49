//go:build unix

package proc

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseSignal returns the signal named name. It accepts every name
// spiffe-helper accepts for renew_signal (golang.org/x/sys/unix.SignalNum:
// "SIGUSR1", "SIGHUP", ...), and also the name without its "SIG" prefix
// and any mix of upper and lower case: "usr1", "Sighup". Numbers are not
// accepted. An unknown name is an error that lists the valid ones.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "" {
		return 0, fmt.Errorf("parsing signal: the name is empty; use one of %s", strings.Join(SignalNames(), ", "))
	}
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("parsing signal %q: unknown name; use one of %s", name, strings.Join(SignalNames(), ", "))
}

// SignalNames returns the names ParseSignal knows, with their "SIG" prefix,
// in signal number order.
func SignalNames() []string {
	var names []string
	for i := 1; i < 65; i++ {
		if n := unix.SignalName(syscall.Signal(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// SignalName returns sig's name, "SIGUSR1", or its number's text for a
// signal without one.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return sig.String()
}
