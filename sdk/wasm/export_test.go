//go:build !wasip1

package wasm

// ResetForTest forgets what Serve recorded.
func ResetForTest() {
	served.mu.Lock()
	served.d, served.err = nil, nil
	served.mu.Unlock()
}
