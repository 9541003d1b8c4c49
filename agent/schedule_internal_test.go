package agent

import (
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		fraction            float64
		floor               time.Duration
		want                time.Time
	}{
		{"not backdated", now, now.Add(time.Hour), 0.5, time.Second, now.Add(30 * time.Minute)},
		// SPIRE and the dev issuer backdate NotBefore by 10s; with a 10s TTL
		// measuring from NotBefore would renew at once, in a loop.
		{"backdated by the whole TTL", now.Add(-10 * time.Second), now.Add(10 * time.Second), 0.5, time.Second, now.Add(5 * time.Second)},
		{"issued in the future", now.Add(time.Minute), now.Add(3 * time.Minute), 0.5, time.Second, now.Add(2 * time.Minute)},
		{"almost expired", now.Add(-time.Hour), now.Add(100 * time.Millisecond), 0.5, time.Second, now.Add(time.Second)},
		{"expired", now.Add(-time.Hour), now.Add(-time.Minute), 0.5, 500 * time.Millisecond, now.Add(500 * time.Millisecond)},
		{"fraction", now, now.Add(100 * time.Second), 0.8, time.Second, now.Add(80 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renewAt(now, tt.notBefore, tt.notAfter, tt.fraction, tt.floor); !got.Equal(tt.want) {
				t.Errorf("renewAt = %s, want %s", got.Sub(now), tt.want.Sub(now))
			}
		})
	}
}
