//go:build !unix

package proc

import (
	"fmt"
	"runtime"
	"syscall"
)

// ParseSignal fails: there are no unix signals to send on this system,
// so a config that names one is refused at load, naming the platform.
func ParseSignal(name string) (syscall.Signal, error) {
	return 0, fmt.Errorf("signal %q: signals are not available on %s; use an exec notifier or a plugin", name, runtime.GOOS)
}

// SignalNames returns no names: there are none to send on this system.
func SignalNames() []string { return nil }

// SignalName returns sig's name as the runtime prints it.
func SignalName(sig syscall.Signal) string { return sig.String() }
