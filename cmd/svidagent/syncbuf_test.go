package main_test

import (
	"bytes"
	"sync"
)

// syncBuffer is a buffer safe for a process's stdout and stderr writers and
// a reader. It does not embed bytes.Buffer: an embedded buffer's ReadFrom
// would be promoted, and io.Copy would use it, bypassing the lock.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
