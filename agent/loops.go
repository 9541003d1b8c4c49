package agent

import (
	"sync"
	"sync/atomic"
	"time"
)

// loop is the liveness record of one internal goroutine. A loop is wedged
// when one unit of its work has run longer than the agent's wedge limit, and
// dead when it exited while the agent was still running. Neither needs a
// periodic wakeup: both are judged when liveness is asked.
type loop struct {
	name      string
	busySince atomic.Int64 // unix nanoseconds; 0 while idle
	dead      atomic.Bool
}

func (l *loop) busy() { l.busySince.Store(time.Now().UnixNano()) }
func (l *loop) idle() { l.busySince.Store(0) }

// loops owns the agent's goroutines: it starts them, records their
// liveness, and waits for them to exit.
type loops struct {
	mu       sync.Mutex
	all      []*loop
	wg       sync.WaitGroup
	stopping atomic.Bool
}

// goLoop runs fn in a goroutine recorded as name.
func (ls *loops) goLoop(name string, fn func(l *loop)) {
	l := &loop{name: name}
	ls.mu.Lock()
	ls.all = append(ls.all, l)
	ls.mu.Unlock()
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		defer func() {
			if !ls.stopping.Load() {
				l.dead.Store(true)
			}
		}()
		fn(l)
	}()
}

// stop marks the loops as stopping, so that their exit is not a death,
// and waits for them.
func (ls *loops) stop() {
	ls.stopping.Store(true)
	ls.wg.Wait()
}

// unhealthy returns a description of each wedged or dead loop.
func (ls *loops) unhealthy(wedgeAfter time.Duration) []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var bad []string
	now := time.Now().UnixNano()
	for _, l := range ls.all {
		if l.dead.Load() {
			bad = append(bad, l.name+": exited")
			continue
		}
		if since := l.busySince.Load(); since != 0 && time.Duration(now-since) > wedgeAfter {
			bad = append(bad, l.name+": busy for "+time.Duration(now-since).Round(time.Second).String())
		}
	}
	return bad
}
