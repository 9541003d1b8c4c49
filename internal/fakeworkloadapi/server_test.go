package fakeworkloadapi_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	fed = spiffeid.RequireTrustDomainFromString("federated.test")
	web = spiffeid.RequireFromPath(td, "/web")
	db  = spiffeid.RequireFromPath(td, "/db")
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, srv *fakeworkloadapi.Server) *workloadapi.Client {
	t.Helper()
	c, err := workloadapi.New(testCtx(t), workloadapi.WithAddr(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawConn(t *testing.T, srv *fakeworkloadapi.Server) workload.SpiffeWorkloadAPIClient {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return workload.NewSpiffeWorkloadAPIClient(conn)
}

func TestSecurityHeaderRequired(t *testing.T) {
	srv := fakeworkloadapi.New(t)
	ca := testca.New(t, td)
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, web)}, x509bundle.NewSet(ca.X509Bundle()))
	srv.SetJWTBundles(ca.JWTBundle())
	srv.SetJWTSVIDFunc(fakeworkloadapi.JWTSVIDsFrom(ca, time.Minute, web))
	client := rawConn(t, srv)

	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"FetchX509SVID", func(ctx context.Context) error {
			s, err := client.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"FetchX509Bundles", func(ctx context.Context) error {
			s, err := client.FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"FetchJWTBundles", func(ctx context.Context) error {
			s, err := client.FetchJWTBundles(ctx, &workload.JWTBundlesRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"FetchJWTSVID", func(ctx context.Context) error {
			_, err := client.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"a"}})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(testCtx(t))
			if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "security header missing from request" {
				t.Fatalf("without header: err = %v, want InvalidArgument \"security header missing from request\"", err)
			}
			ctx := metadata.AppendToOutgoingContext(testCtx(t), "workload.spiffe.io", "true")
			if err := tt.call(ctx); err != nil {
				t.Fatalf("with header: %v", err)
			}
			if got := srv.Calls(fakeworkloadapi.Method(tt.name)); got != 2 {
				t.Errorf("Calls = %d, want 2", got)
			}
		})
	}
}

func TestFetchWithGoSPIFFE(t *testing.T) {
	srv := fakeworkloadapi.New(t)
	ca := testca.New(t, td)
	fedCA := testca.New(t, fed)
	inter := ca.ChildCA(t)
	svids := []*x509svid.SVID{inter.X509SVID(t, web, testca.WithHint("external")), ca.X509SVID(t, db, testca.WithHint("internal"))}
	srv.SetX509(svids, x509bundle.NewSet(ca.X509Bundle()), fedCA.X509Bundle())
	srv.SetJWTBundles(ca.JWTBundle(), fedCA.JWTBundle())
	srv.SetJWTSVIDFunc(fakeworkloadapi.JWTSVIDsFrom(ca, time.Minute, web, db))
	c := newClient(t, srv)
	ctx := testCtx(t)

	x, err := c.FetchX509Context(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.SVIDs) != 2 || x.SVIDs[0].ID != web || x.SVIDs[0].Hint != "external" || x.SVIDs[1].Hint != "internal" {
		t.Fatalf("SVIDs = %+v", x.SVIDs)
	}
	if len(x.SVIDs[0].Certificates) != 2 {
		t.Errorf("chain length = %d, want 2 (leaf and intermediate)", len(x.SVIDs[0].Certificates))
	}
	if !x.Bundles.Has(td) || !x.Bundles.Has(fed) {
		t.Errorf("bundles lack %s or %s", td, fed)
	}
	for _, s := range x.SVIDs {
		if _, _, err := x509svid.Verify(s.Certificates, x.Bundles); err != nil {
			t.Errorf("verifying %s: %v", s.ID, err)
		}
	}
	xb, err := c.FetchX509Bundles(ctx)
	if err != nil || xb.Len() != 2 {
		t.Errorf("FetchX509Bundles = %v, %v; want 2 bundles", xb, err)
	}

	jb, err := c.FetchJWTBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aud := []string{"a", "b", "c"}
	j, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a", ExtraAudiences: []string{"b", "c"}, Subject: db})
	if err != nil {
		t.Fatal(err)
	}
	got, err := jwtsvid.ParseAndValidate(j.Marshal(), jb, aud)
	if err != nil {
		t.Fatalf("validating JWT-SVID: %v", err)
	}
	if got.ID != db || len(got.Audience) != 3 {
		t.Errorf("JWT-SVID = %s %v, want %s %v", got.ID, got.Audience, db, aud)
	}
	reqs := srv.JWTRequests()
	if len(reqs) != 1 || reqs[0].SpiffeId != db.String() || len(reqs[0].Audience) != 3 {
		t.Errorf("JWTRequests = %v", reqs)
	}
	if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a", Subject: spiffeid.RequireFromPath(td, "/other")}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("FetchJWTSVID for an unknown ID: err = %v, want PermissionDenied", err)
	}
}

func TestNoIdentity(t *testing.T) {
	srv := fakeworkloadapi.New(t)
	c := newClient(t, srv)
	ctx := testCtx(t)
	if _, err := c.FetchX509Context(ctx); status.Code(err) != codes.PermissionDenied {
		t.Errorf("FetchX509Context: err = %v, want PermissionDenied", err)
	}
	if _, err := c.FetchJWTBundles(ctx); status.Code(err) != codes.PermissionDenied {
		t.Errorf("FetchJWTBundles: err = %v, want PermissionDenied", err)
	}
	if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("FetchJWTSVID: err = %v, want PermissionDenied", err)
	}
}

// recorder is an X509ContextWatcher that hands updates and errors to
// channels.
type recorder struct {
	updates chan *workloadapi.X509Context
	errs    chan error
}

func newRecorder() *recorder {
	return &recorder{updates: make(chan *workloadapi.X509Context, 16), errs: make(chan error, 16)}
}

func (r *recorder) OnX509ContextUpdate(c *workloadapi.X509Context) { r.updates <- c }
func (r *recorder) OnX509ContextWatchError(err error) {
	select {
	case r.errs <- err:
	default:
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func drain[T any](ch <-chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

type fastBackoff struct{}

func (fastBackoff) NewBackoff() workloadapi.Backoff { return fastBackoff{} }
func (fastBackoff) Next() time.Duration             { return 10 * time.Millisecond }
func (fastBackoff) Reset()                          {}

func TestPushErrorOutage(t *testing.T) {
	srv := fakeworkloadapi.New(t)
	ca := testca.New(t, td)
	bundles := x509bundle.NewSet(ca.X509Bundle())
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, web)}, bundles)
	ctx := testCtx(t)
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(srv.Addr()), workloadapi.WithBackoffStrategy(fastBackoff{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	rec := newRecorder()
	watchCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.WatchX509Context(watchCtx, rec) })
	defer wg.Wait()
	defer cancel()

	first := recv(t, rec.updates)
	if first.SVIDs[0].ID != web {
		t.Fatalf("first update ID = %s", first.SVIDs[0].ID)
	}

	// A push reaches the open stream.
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, db)}, bundles)
	if got := recv(t, rec.updates); got.SVIDs[0].ID != db {
		t.Fatalf("pushed update ID = %s, want %s", got.SVIDs[0].ID, db)
	}
	if err := srv.WaitSent(ctx, fakeworkloadapi.FetchX509SVID, 2); err != nil {
		t.Fatal(err)
	}

	// An injected error ends the stream; the client sees it and retries.
	srv.SetError(fakeworkloadapi.FetchX509SVID, status.Error(codes.Unavailable, "agent is busy"))
	if err := recv(t, rec.errs); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch error = %v, want Unavailable", err)
	}
	srv.SetError(fakeworkloadapi.FetchX509SVID, nil)
	if got := recv(t, rec.updates); got.SVIDs[0].ID != db {
		t.Fatalf("update after error ID = %s", got.SVIDs[0].ID)
	}

	// An outage: the client reports errors, then recovers on restart.
	drain(rec.errs)
	srv.Stop()
	if err := recv(t, rec.errs); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch error during outage = %v, want Unavailable", err)
	}
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, web)}, bundles)
	srv.Restart()
	if got := recv(t, rec.updates); got.SVIDs[0].ID != web {
		t.Fatalf("update after restart ID = %s, want %s", got.SVIDs[0].ID, web)
	}
}
