//go:build unix

package exec

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name    string
		initial time.Duration
		ran     []time.Duration // how long each run lasted
		want    []time.Duration
	}{
		{name: "doubles to the cap", initial: s, ran: []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0}, want: []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s, 60 * s}},
		{name: "a long run resets", initial: s, ran: []time.Duration{0, 0, 0, 10 * s, 9 * s}, want: []time.Duration{s, 2 * s, 4 * s, s, 2 * s}},
		{name: "an initial above the cap stays", initial: 2 * time.Minute, ran: []time.Duration{0, 0}, want: []time.Duration{2 * time.Minute, 2 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff{initial: tt.initial, max: max(tt.initial, MaxRestartBackoff)}
			for i, ran := range tt.ran {
				if got := b.next(ran); got != tt.want[i] {
					t.Fatalf("delay %d after a %v run: %v, want %v", i, ran, got, tt.want[i])
				}
			}
		})
	}
}
