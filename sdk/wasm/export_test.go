//go:build !wasip1

package wasm

import "github.com/svidagent/svidagent/sdk/internal/wasmguest"

// ResetForTest forgets what Serve recorded.
func ResetForTest() { wasmguest.Reset() }
