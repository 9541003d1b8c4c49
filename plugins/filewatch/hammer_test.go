package filewatch_test

import (
	"context"
	"math/big"
	"sync"
	"testing"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
)

// Hammer: several Watch calls and concurrent Issue calls on one issuer
// while the directory rotates as fast as it can, under -race. Nothing
// invalid is ever returned or published (the recorders check every
// publication), and every Watch ends on the last set.
func TestHammer(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, dir string) func(pair)
	}{
		{name: "in-place rewrite", write: func(t *testing.T, dir string) func(pair) {
			return func(p pair) { writeInPlace(t, dir, p) }
		}},
		{name: "rename over", write: func(t *testing.T, dir string) func(pair) {
			return func(p pair) { writeRenamed(t, dir, p) }
		}},
		{name: "data swap", write: func(t *testing.T, dir string) func(pair) {
			w := &atomicWriter{dir: dir}
			return func(p pair) { w.write(t, p) }
		}},
	}
	const (
		rotations = 150
		watchers  = 4
		issuers   = 4
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := testca.New(t, td)
			dir := t.TempDir()
			write := tt.write(t, dir)
			pairs := make([]pair, rotations)
			for i := range pairs {
				pairs[i] = newPair(t, ca)
			}
			write(pairs[0])
			iss := newIssuer(t, dir, "1ms")
			recs := make([]*recorder, watchers)
			for i := range recs {
				recs[i] = startWatch(t, iss, nil)
			}

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var mu sync.Mutex
			var invalid []error
			issued := 0
			for range issuers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						creds, err := iss.Issue(ctx, &hostapi.IssueRequest{X509: true})
						if err != nil {
							continue // a torn state is refused: fine
						}
						mu.Lock()
						issued++
						if err := checkCreds(creds); err != nil {
							invalid = append(invalid, err)
						}
						mu.Unlock()
					}
				}()
			}
			for _, p := range pairs[1:] {
				write(p)
			}
			last := pairs[len(pairs)-1].serial
			for _, r := range recs {
				waitForSerial(t, r, last)
			}
			cancel()
			wg.Wait()
			for _, r := range recs {
				r.stop()
			}
			if issued == 0 {
				t.Error("no Issue call succeeded during the hammer")
			}
			for _, err := range invalid {
				t.Errorf("Issue returned an invalid set: %v", err)
			}
		})
	}
}

// waitForSerial consumes r's publications until want arrives.
func waitForSerial(t *testing.T, r *recorder, want *big.Int) {
	t.Helper()
	for {
		if r.next().Cmp(want) == 0 {
			return
		}
	}
}
