//go:build !unix

package main

import (
	"fmt"
	"io"
	"runtime"
)

// execCmd: the wrapper needs unix process groups and signals.
func execCmd(_ []string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "svidagent exec: not available on %s (it needs unix signals and process groups); run svidagent run beside the program instead\n", runtime.GOOS)
	return exitUsage
}
