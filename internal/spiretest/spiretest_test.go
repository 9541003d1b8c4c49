//go:build unix

package spiretest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/svidagent/svidagent/internal/spiretest"
)

// x509Watcher forwards X.509 context updates to a channel until ctx is done.
type x509Watcher struct {
	ctx     context.Context
	updates chan *workloadapi.X509Context
}

func (w *x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	select {
	case w.updates <- c:
	case <-w.ctx.Done():
	}
}

func (w *x509Watcher) OnX509ContextWatchError(error) {}

// TestSPIRE runs one SPIRE deployment through the harness's whole API: it
// fetches X.509 and JWT SVIDs, watches a real rotation, registers and deletes
// an entry for another workload, and restarts the agent and the server.
func TestSPIRE(t *testing.T) {
	const ttl = 20 * time.Second
	s := spiretest.Start(t, spiretest.Options{X509TTL: ttl, JWTTTL: ttl})
	if got, want := s.TrustDomain(), "example.org"; got != want {
		t.Fatalf("TrustDomain() = %q, want %q", got, want)
	}
	id := "spiffe://example.org/spiretest"
	s.CreateEntry(t, id, spiretest.UIDSelector())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(s.SocketAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	t.Run("x509 rotation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		w := &x509Watcher{ctx: ctx, updates: make(chan *workloadapi.X509Context)}
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := client.WatchX509Context(ctx, w); err != nil && ctx.Err() == nil {
				t.Errorf("WatchX509Context: %v", err)
			}
		})
		defer wg.Wait()
		defer cancel()

		next := func() *workloadapi.X509Context {
			t.Helper()
			select {
			case c := <-w.updates:
				if len(c.SVIDs) != 1 {
					t.Fatalf("got %d SVIDs, want 1", len(c.SVIDs))
				}
				if got := c.SVIDs[0].ID.String(); got != id {
					t.Fatalf("SVID ID = %s, want %s", got, id)
				}
				return c
			case <-ctx.Done():
				t.Fatalf("waiting for an X.509 context: %v", ctx.Err())
				return nil
			}
		}
		first := next().SVIDs[0].Certificates[0]
		// SPIRE backdates NotBefore by 10s.
		if got := first.NotAfter.Sub(first.NotBefore); got != ttl+10*time.Second {
			t.Errorf("SVID lifetime = %v, want %v", got, ttl+10*time.Second)
		}
		for {
			cert := next().SVIDs[0].Certificates[0]
			if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
				t.Logf("second SVID issued %v after the first", cert.NotBefore.Sub(first.NotBefore))
				break
			}
		}
	})

	t.Run("jwt", func(t *testing.T) {
		svid, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "spiretest"})
		if err != nil {
			t.Fatal(err)
		}
		if got := svid.ID.String(); got != id {
			t.Errorf("JWT-SVID ID = %s, want %s", got, id)
		}
		if left := time.Until(svid.Expiry); left > ttl || left <= 0 {
			t.Errorf("JWT-SVID expires in %v, want at most %v", left, ttl)
		}
	})

	t.Run("server cli", func(t *testing.T) {
		out := s.ServerCLI(t, "agent", "list", "-output", "json")
		if !bytes.Contains(out, []byte(s.AgentID()[len("spiffe://example.org"):])) {
			t.Errorf("agent list does not show %s:\n%s", s.AgentID(), out)
		}
	})

	t.Run("other workload entry", func(t *testing.T) {
		other := "unix:uid:" + strconv.Itoa(os.Getuid()+1)
		entryID := s.CreateEntryWith(t, spiretest.Entry{
			SPIFFEID:  "spiffe://example.org/other",
			Selectors: []string{other},
			X509TTL:   time.Minute,
			Hint:      "other",
		})
		s.DeleteEntry(t, entryID)
	})

	// Hammers the harness's lock under -race.
	t.Run("concurrent entries", func(t *testing.T) {
		for i := range 4 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				sel := "unix:uid:" + strconv.Itoa(os.Getuid()+2+i)
				entryID := s.CreateEntry(t, "spiffe://example.org/concurrent/"+strconv.Itoa(i), sel)
				s.DeleteEntry(t, entryID)
			})
		}
	})

	fetch := func(t *testing.T) {
		t.Helper()
		// A fresh client: the old connection went away with the agent.
		c, err := workloadapi.New(ctx, workloadapi.WithAddr(s.SocketAddr()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		svid, err := c.FetchX509SVID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := svid.ID.String(); got != id {
			t.Errorf("SVID ID = %s, want %s", got, id)
		}
	}

	t.Run("agent restart", func(t *testing.T) {
		s.StopAgent(t)
		if _, err := os.Stat(s.SocketPath()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("agent socket after StopAgent: %v, want it gone", err)
		}
		s.StartAgent(t)
		fetch(t)
	})

	t.Run("server restart", func(t *testing.T) {
		s.StopServer(t)
		fetch(t) // the agent serves from its cache
		s.StartServer(t)
		s.CreateEntry(t, "spiffe://example.org/after-restart", spiretest.UIDSelector())
	})
}
