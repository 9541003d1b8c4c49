package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is jittered exponential backoff: each delay is drawn from
// [d/2, d], d doubling from min up to max.
type backoff struct {
	min, max time.Duration
	d        time.Duration
}

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = b.min
	} else {
		b.d *= 2
	}
	if b.d > b.max {
		b.d = b.max
	}
	half := b.d / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.d = 0 }

// sleepCtx waits d or until ctx is done, and reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
