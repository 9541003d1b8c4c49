package workloadapi_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/registry"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	fedTD  = spiffeid.RequireTrustDomainFromString("federated.test")
	web    = spiffeid.RequireFromPath(td, "/web")
	db     = spiffeid.RequireFromPath(td, "/db")
	ghost  = spiffeid.RequireFromPath(td, "/ghost")
	bgCtx  = context.Background
	waitup = 20 * time.Second
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitup)
	t.Cleanup(cancel)
	return ctx
}

type fastBackoff struct{}

func (fastBackoff) NewBackoff() gsworkloadapi.Backoff { return fastBackoff{} }
func (fastBackoff) Next() time.Duration               { return 10 * time.Millisecond }
func (fastBackoff) Reset()                            {}

func newIssuer(t *testing.T, srv *fakeworkloadapi.Server) *workloadapi.Issuer {
	t.Helper()
	iss, err := workloadapi.New(&workloadapi.Config{Address: srv.Addr()}, nil, gsworkloadapi.WithBackoffStrategy(fastBackoff{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	return iss
}

// fixture is a fake agent serving web (hint "external") and db (hint
// "internal"), a federated bundle, JWT bundles and JWT-SVIDs for both.
type fixture struct {
	srv   *fakeworkloadapi.Server
	ca    *testca.CA
	fedCA *testca.CA
	iss   *workloadapi.Issuer
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{srv: fakeworkloadapi.New(t), ca: testca.New(t, td), fedCA: testca.New(t, fedTD)}
	f.setX509(t, f.ca.X509SVID(t, web, testca.WithHint("external")), f.ca.X509SVID(t, db, testca.WithHint("internal")))
	f.srv.SetJWTBundles(f.ca.JWTBundle(), f.fedCA.JWTBundle())
	f.srv.SetJWTSVIDFunc(fakeworkloadapi.JWTSVIDsFrom(f.ca, time.Minute, web, db))
	f.iss = newIssuer(t, f.srv)
	return f
}

func (f *fixture) setX509(t *testing.T, svids ...*x509svid.SVID) {
	t.Helper()
	f.srv.SetX509(svids, x509bundle.NewSet(f.ca.X509Bundle()), f.fedCA.X509Bundle())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		address string
		wantErr string // substring of the field error; "" means valid
	}{
		{name: "empty uses the environment", address: ""},
		{name: "unix URI", address: "unix:///run/spire/agent.sock"},
		{name: "unix single slash", address: "unix:/run/spire/agent.sock"},
		{name: "bare absolute path", address: "/run/spire/agent.sock"},
		{name: "bare relative path", address: "spire/agent.sock"},
		{name: "tcp", address: "tcp://127.0.0.1:8081"},
		{name: "tcp hostname", address: "tcp://localhost:8081", wantErr: "literal IP address"},
		{name: "tcp without port", address: "tcp://127.0.0.1", wantErr: "tcp://IP:port"},
		{name: "http scheme", address: "http://127.0.0.1:8081", wantErr: `unsupported scheme "http"`},
		{name: "unix relative", address: "unix:agent.sock", wantErr: "absolute path"},
		{name: "unix with query", address: "unix:///agent.sock?x=1", wantErr: "unix:///path/to/agent.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&workloadapi.Config{Address: tt.address}).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fes := hostapi.AsFieldErrors(err)
			if len(fes) != 1 || fes[0].Field != "address" {
				t.Fatalf("Validate() = %v, want one field error on address", err)
			}
			if !strings.Contains(fes[0].Message, tt.wantErr) {
				t.Errorf("message %q lacks %q", fes[0].Message, tt.wantErr)
			}
			if _, err := workloadapi.New(&workloadapi.Config{Address: tt.address}, nil); err == nil {
				t.Error("New accepted an invalid address")
			}
		})
	}
}

func TestResolvedAddress(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		address string
		env     *string
		want    string
		wantErr bool
		errSays string
	}{
		{name: "default", want: workloadapi.DefaultAddress},
		{name: "environment", env: ptr("unix:///env/agent.sock"), want: "unix:///env/agent.sock"},
		{name: "environment bare path", env: ptr("/env/agent.sock"), want: "unix:///env/agent.sock"},
		{name: "empty environment", env: ptr(""), want: workloadapi.DefaultAddress},
		{name: "invalid environment", env: ptr("ftp://x"), wantErr: true},
		{name: "config wins", address: "/cfg/agent.sock", env: ptr("/env/agent.sock"), want: "unix:///cfg/agent.sock"},
		{name: "relative", address: "agent.sock", want: "unix://" + filepath.Join(cwd, "agent.sock")},
		{name: "tcp", address: "tcp://127.0.0.1:1", want: "tcp://127.0.0.1:1"},
		// A named pipe is taken as a pipe, never as a relative socket path.
		{name: "npipe", address: "npipe:agent", want: "npipe:agent", wantErr: runtime.GOOS != "windows", errSays: "named pipes (npipe:) are for windows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != nil {
				t.Setenv(gsworkloadapi.SocketEnv, *tt.env)
			} else {
				t.Setenv(gsworkloadapi.SocketEnv, "")
				os.Unsetenv(gsworkloadapi.SocketEnv)
			}
			got, err := (&workloadapi.Config{Address: tt.address}).ResolvedAddress()
			if (err != nil) != tt.wantErr {
				t.Fatalf("ResolvedAddress() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.errSays) {
					t.Errorf("ResolvedAddress() error %q does not say %q", err, tt.errSays)
				}
				return
			}
			if got != tt.want {
				t.Errorf("ResolvedAddress() = %q, want %q", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestIssueX509Selection(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		req     hostapi.IssueRequest
		want    []spiffeid.ID
		wantErr string
	}{
		{name: "first by default", want: []spiffeid.ID{web}},
		{name: "by SPIFFE ID", req: hostapi.IssueRequest{SPIFFEID: db}, want: []spiffeid.ID{db}},
		{name: "by hint", req: hostapi.IssueRequest{Hint: "internal"}, want: []spiffeid.ID{db}},
		{name: "by ID and hint", req: hostapi.IssueRequest{SPIFFEID: web, Hint: "external"}, want: []spiffeid.ID{web}},
		{name: "all", req: hostapi.IssueRequest{All: true}, want: []spiffeid.ID{web, db}},
		{name: "unknown hint", req: hostapi.IssueRequest{Hint: "nope"}, wantErr: `no X509-SVID with hint "nope" among [spiffe://example.org/web (hint "external"), spiffe://example.org/db (hint "internal")]; check hint`},
		{name: "unknown ID", req: hostapi.IssueRequest{SPIFFEID: ghost}, wantErr: `no X509-SVID with SPIFFE ID "spiffe://example.org/ghost"`},
		{name: "ID and mismatched hint", req: hostapi.IssueRequest{SPIFFEID: web, Hint: "internal"}, wantErr: "check spiffe_id and hint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.X509 = true
			creds, err := f.iss.Issue(testCtx(t), &req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Issue() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []spiffeid.ID
			for _, s := range creds.X509SVIDs {
				got = append(got, s.ID)
				if s.PrivateKey == nil {
					t.Errorf("X509-SVID %s has no private key", s.ID)
				}
				if _, _, err := x509svid.Verify(s.Certificates, creds.X509Bundles); err != nil {
					t.Errorf("X509-SVID %s does not verify against the returned bundles: %v", s.ID, err)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("X509-SVIDs = %v, want %v", got, tt.want)
			}
			if !creds.X509Bundles.Has(td) || !creds.X509Bundles.Has(fedTD) {
				t.Errorf("X509 bundles lack own or federated trust domain")
			}
			if creds.JWTSVIDs != nil || creds.JWTBundles != nil {
				t.Errorf("X.509-only request returned JWT parts")
			}
		})
	}
}

func TestIssueJWT(t *testing.T) {
	f := newFixture(t)
	jr := hostapi.JWTRequest{Audience: "aud1", ExtraAudiences: []string{"aud2", "aud3"}, FileName: "jwt.token"}
	tests := []struct {
		name   string
		req    hostapi.IssueRequest
		wantID spiffeid.ID
	}{
		{name: "default identity", req: hostapi.IssueRequest{JWT: []hostapi.JWTRequest{jr}}, wantID: web},
		{name: "selected identity", req: hostapi.IssueRequest{SPIFFEID: db, JWT: []hostapi.JWTRequest{jr}}, wantID: db},
		{name: "with X.509", req: hostapi.IssueRequest{SPIFFEID: db, X509: true, JWT: []hostapi.JWTRequest{jr, {Audience: "solo", FileName: "b"}}}, wantID: db},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := f.iss.Issue(testCtx(t), &tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if len(creds.JWTSVIDs) != len(tt.req.JWT) {
				t.Fatalf("got %d JWT-SVIDs, want %d", len(creds.JWTSVIDs), len(tt.req.JWT))
			}
			if creds.JWTBundles == nil || !creds.JWTBundles.Has(td) || !creds.JWTBundles.Has(fedTD) {
				t.Fatalf("JWT bundles = %v, want both trust domains", creds.JWTBundles)
			}
			for i, js := range creds.JWTSVIDs {
				want := tt.req.JWT[i]
				if js.Request.Key() != want.Key() {
					t.Errorf("JWT-SVID %d answers %v, want %v", i, js.Request, want)
				}
				// The token is real: it validates against the returned bundle
				// and carries every audience asked for (spiffe-helper drops
				// the extra audiences in one-shot mode).
				got, err := jwtsvid.ParseAndValidate(js.SVID.Marshal(), creds.JWTBundles, want.Audiences())
				if err != nil {
					t.Fatalf("validating JWT-SVID: %v", err)
				}
				if got.ID != tt.wantID {
					t.Errorf("sub = %s, want %s", got.ID, tt.wantID)
				}
				if fmt.Sprint(got.Audience) != fmt.Sprint(want.Audiences()) {
					t.Errorf("aud = %v, want %v", got.Audience, want.Audiences())
				}
			}
			if tt.req.X509 && (len(creds.X509SVIDs) != 1 || creds.X509SVIDs[0].ID != tt.wantID) {
				t.Errorf("X509-SVIDs = %v, want [%s]", creds.X509SVIDs, tt.wantID)
			}
		})
	}
	reqs := f.srv.JWTRequests()
	if len(reqs) == 0 || reqs[len(reqs)-1].SpiffeId != db.String() {
		t.Errorf("last JWT request = %v, want subject %s", reqs[len(reqs)-1], db)
	}
}

// TestIssueCallsAtOnce checks that one Issue makes its Workload API calls
// at once: the JWT-SVID is answered only once the JWT bundles have been
// asked for, which a client calling in a row (SVID first, then bundles)
// never does.
func TestIssueCallsAtOnce(t *testing.T) {
	f := newFixture(t)
	mint := fakeworkloadapi.JWTSVIDsFrom(f.ca, time.Minute, web, db)
	f.srv.SetJWTSVIDFunc(func(req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
		ctx, cancel := context.WithTimeout(bgCtx(), 5*time.Second)
		defer cancel()
		if err := f.srv.WaitCalls(ctx, fakeworkloadapi.FetchJWTBundles, 1); err != nil {
			return nil, status.Error(codes.DeadlineExceeded, "the JWT bundles were not asked for while the JWT-SVID call was open")
		}
		return mint(req)
	})
	req := &hostapi.IssueRequest{X509: true, JWT: []hostapi.JWTRequest{{Audience: "aud", FileName: "jwt.token"}}}
	creds, err := f.iss.Issue(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.X509SVIDs) != 1 || len(creds.JWTSVIDs) != 1 || creds.JWTBundles == nil {
		t.Fatalf("Issue = %d X509-SVIDs, %d JWT-SVIDs, JWT bundles %v; want one of each", len(creds.X509SVIDs), len(creds.JWTSVIDs), creds.JWTBundles)
	}
}

func TestIssueJWTByHint(t *testing.T) {
	f := newFixture(t)
	f.srv.SetJWTSVIDFunc(func(req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
		resp := &workload.JWTSVIDResponse{}
		for _, s := range []struct {
			id   spiffeid.ID
			hint string
		}{{web, "external"}, {db, "internal"}} {
			tok, err := f.ca.SignJWT(s.id, req.Audience, time.Now().Add(time.Minute))
			if err != nil {
				return nil, err
			}
			resp.Svids = append(resp.Svids, &workload.JWTSVID{SpiffeId: s.id.String(), Svid: tok, Hint: s.hint})
		}
		return resp, nil
	})
	jr := hostapi.JWTRequest{Audience: "a", FileName: "t"}
	creds, err := f.iss.Issue(testCtx(t), &hostapi.IssueRequest{Hint: "internal", JWT: []hostapi.JWTRequest{jr}})
	if err != nil {
		t.Fatal(err)
	}
	if got := creds.JWTSVIDs[0].SVID.ID; got != db {
		t.Errorf("JWT-SVID by hint = %s, want %s", got, db)
	}
	_, err = f.iss.Issue(testCtx(t), &hostapi.IssueRequest{Hint: "nope", JWT: []hostapi.JWTRequest{jr}})
	if err == nil || !strings.Contains(err.Error(), `no JWT-SVID with hint "nope"`) {
		t.Errorf("unknown hint: err = %v", err)
	}
}

func TestIssueErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fixture)
		req      hostapi.IssueRequest
		wantCode codes.Code
		wantText string
	}{
		{
			name: "agent unavailable",
			setup: func(f *fixture) {
				f.srv.SetError(fakeworkloadapi.FetchX509SVID, status.Error(codes.Unavailable, "down"))
			},
			req:      hostapi.IssueRequest{X509: true},
			wantCode: codes.Unavailable,
			wantText: "check that the agent is running",
		},
		{
			name:     "no identity",
			setup:    func(f *fixture) { f.srv.SetX509(nil, nil) },
			req:      hostapi.IssueRequest{X509: true},
			wantCode: codes.PermissionDenied,
			wantText: "check that a registration entry matches",
		},
		{
			name:     "JWT-SVID denied",
			setup:    func(f *fixture) {},
			req:      hostapi.IssueRequest{SPIFFEID: ghost, JWT: []hostapi.JWTRequest{{Audience: "a"}}},
			wantCode: codes.PermissionDenied,
			wantText: `fetching a JWT-SVID for audience ["a"]`,
		},
		{
			name: "JWT bundles failing",
			setup: func(f *fixture) {
				f.srv.SetError(fakeworkloadapi.FetchJWTBundles, status.Error(codes.Internal, "boom"))
			},
			req:      hostapi.IssueRequest{JWTBundles: true},
			wantCode: codes.Internal,
			wantText: "fetching JWT bundles",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(f)
			_, err := f.iss.Issue(testCtx(t), &tt.req)
			if status.Code(err) != tt.wantCode {
				t.Errorf("error = %v, want code %s", err, tt.wantCode)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

// recorder collects Watch callbacks on channels.
type recorder struct {
	mu      sync.Mutex
	active  int // callbacks running; must never exceed 1
	overlap bool
	updates chan *hostapi.Credentials
	errs    chan error
}

func newRecorder() *recorder {
	return &recorder{updates: make(chan *hostapi.Credentials, 64), errs: make(chan error, 1024)}
}

func (r *recorder) enter() {
	r.mu.Lock()
	r.active++
	if r.active > 1 {
		r.overlap = true
	}
	r.mu.Unlock()
}

func (r *recorder) exit() { r.mu.Lock(); r.active--; r.mu.Unlock() }

func (r *recorder) update(c *hostapi.Credentials) { r.enter(); defer r.exit(); r.updates <- c }
func (r *recorder) report(err error) {
	r.enter()
	defer r.exit()
	select {
	case r.errs <- err:
	default:
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitup):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// nextX509 returns the next update carrying X.509 credentials, skipping
// JWT bundle updates.
func nextX509(t *testing.T, r *recorder) *hostapi.Credentials {
	t.Helper()
	for {
		c := recv(t, r.updates, "an X.509 update")
		if c.X509SVIDs != nil {
			return c
		}
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

// startWatch runs Watch and returns a function that stops it and returns
// its result.
func startWatch(t *testing.T, iss *workloadapi.Issuer, req *hostapi.IssueRequest, r *recorder) func() error {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- iss.Watch(ctx, req, r.update, r.report) }()
	stopped := false
	var result error
	stop := func() error {
		if !stopped {
			cancel()
			result = recv(t, done, "Watch to return")
			stopped = true
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestWatch(t *testing.T) {
	f := newFixture(t)
	r := newRecorder()
	stop := startWatch(t, f.iss, &hostapi.IssueRequest{SPIFFEID: db, X509: true, JWTBundles: true}, r)

	// The first updates: the X.509 part and the JWT bundles, separately.
	var gotX509, gotJWT bool
	for !gotX509 || !gotJWT {
		c := recv(t, r.updates, "the first updates")
		switch {
		case c.X509SVIDs != nil:
			if c.JWTBundles != nil || len(c.X509SVIDs) != 1 || c.X509SVIDs[0].ID != db || !c.X509Bundles.Has(fedTD) {
				t.Fatalf("X.509 update = %+v", c)
			}
			gotX509 = true
		case c.JWTBundles != nil:
			if c.X509Bundles != nil || !c.JWTBundles.Has(td) {
				t.Fatalf("JWT bundle update = %+v", c)
			}
			gotJWT = true
		default:
			t.Fatalf("empty update %+v", c)
		}
	}

	// A rotation is pushed.
	rotated := f.ca.X509SVID(t, db, testca.WithHint("internal"))
	f.setX509(t, f.ca.X509SVID(t, web), rotated)
	if c := nextX509(t, r); !c.X509SVIDs[0].Certificates[0].Equal(rotated.Certificates[0]) {
		t.Fatal("update does not carry the rotated X509-SVID")
	}
	// A JWT bundle change is pushed.
	f.srv.SetJWTBundles(f.ca.JWTBundle())
	for c := recv(t, r.updates, "a JWT bundle update"); c.JWTBundles == nil || c.JWTBundles.Has(fedTD); c = recv(t, r.updates, "a JWT bundle update") {
	}

	// A stream error is reported, and the stream recovers when it clears.
	f.srv.SetError(fakeworkloadapi.FetchX509SVID, status.Error(codes.Unavailable, "agent is busy"))
	if err := recv(t, r.errs, "a report"); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "watching X509-SVIDs") {
		t.Fatalf("report = %v, want Unavailable while watching X509-SVIDs", err)
	}
	f.srv.SetError(fakeworkloadapi.FetchX509SVID, nil)
	nextX509(t, r)

	// A selection that no longer matches is reported, not delivered.
	drain(r.errs)
	f.setX509(t, f.ca.X509SVID(t, web))
	for err := recv(t, r.errs, "a selection report"); !strings.Contains(err.Error(), "check spiffe_id"); err = recv(t, r.errs, "a selection report") {
	}

	// An outage: errors are reported; after a restart on the same socket
	// the watch delivers again.
	drain(r.errs)
	drain(r.updates)
	f.srv.Stop()
	recv(t, r.errs, "a report during the outage")
	recovered := f.ca.X509SVID(t, db)
	f.setX509(t, recovered)
	f.srv.Restart()
	if c := nextX509(t, r); !c.X509SVIDs[0].Certificates[0].Equal(recovered.Certificates[0]) {
		t.Fatal("update after restart does not carry the new X509-SVID")
	}

	if err := stop(); err != nil {
		t.Errorf("Watch() = %v after cancel, want nil", err)
	}
	// Watch has returned: every goroutine it started has exited, so the
	// streams close on the server.
	ctx := testCtx(t)
	if err := f.srv.WaitFor(ctx, func() bool {
		return f.srv.Streams(fakeworkloadapi.FetchX509SVID) == 0 && f.srv.Streams(fakeworkloadapi.FetchJWTBundles) == 0
	}); err != nil {
		t.Errorf("streams still open after Watch returned: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.overlap {
		t.Error("update/report were called concurrently")
	}
}

func TestWatchOnlyWhatIsAsked(t *testing.T) {
	tests := []struct {
		name       string
		req        hostapi.IssueRequest
		wantX509   int
		wantJWTBnd int
	}{
		{name: "x509 only", req: hostapi.IssueRequest{X509: true}, wantX509: 1},
		{name: "jwt bundles only", req: hostapi.IssueRequest{JWTBundles: true}, wantJWTBnd: 1},
		{name: "jwt svids imply bundles", req: hostapi.IssueRequest{JWT: []hostapi.JWTRequest{{Audience: "a"}}}, wantJWTBnd: 1},
		{name: "both", req: hostapi.IssueRequest{X509: true, JWTBundles: true}, wantX509: 1, wantJWTBnd: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			r := newRecorder()
			stop := startWatch(t, f.iss, &tt.req, r)
			for range tt.wantX509 + tt.wantJWTBnd {
				recv(t, r.updates, "an update")
			}
			if err := f.srv.WaitFor(testCtx(t), func() bool {
				return f.srv.Streams(fakeworkloadapi.FetchX509SVID) == tt.wantX509 && f.srv.Streams(fakeworkloadapi.FetchJWTBundles) == tt.wantJWTBnd
			}); err != nil {
				t.Fatal(err)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if n := f.srv.Calls(fakeworkloadapi.FetchX509SVID); n != tt.wantX509 {
				t.Errorf("FetchX509SVID calls = %d, want %d", n, tt.wantX509)
			}
			if n := f.srv.Calls(fakeworkloadapi.FetchJWTBundles); n != tt.wantJWTBnd {
				t.Errorf("FetchJWTBundles calls = %d, want %d", n, tt.wantJWTBnd)
			}
		})
	}
}

func TestWatchFatalError(t *testing.T) {
	f := newFixture(t)
	f.srv.SetError(fakeworkloadapi.FetchJWTBundles, status.Error(codes.InvalidArgument, "bad request"))
	r := newRecorder()
	done := make(chan error, 1)
	go func() {
		done <- f.iss.Watch(t.Context(), &hostapi.IssueRequest{X509: true, JWTBundles: true}, r.update, r.report)
	}()
	err := recv(t, done, "Watch to give up")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "watching JWT bundles") {
		t.Fatalf("Watch() = %v, want InvalidArgument while watching JWT bundles", err)
	}
	if err := f.srv.WaitFor(testCtx(t), func() bool { return f.srv.Streams(fakeworkloadapi.FetchX509SVID) == 0 }); err != nil {
		t.Errorf("the X.509 stream outlived Watch: %v", err)
	}
}

// TestHammer runs Issue concurrently with itself and with Watch under -race.
func TestHammer(t *testing.T) {
	f := newFixture(t)
	r := newRecorder()
	stop := startWatch(t, f.iss, &hostapi.IssueRequest{X509: true, JWTBundles: true}, r)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for n := range 10 {
				req := &hostapi.IssueRequest{
					X509: n%2 == 0,
					JWT:  []hostapi.JWTRequest{{Audience: fmt.Sprintf("aud-%d-%d", g, n), ExtraAudiences: []string{"x"}}},
				}
				if g%2 == 0 {
					req.SPIFFEID = db
				}
				creds, err := f.iss.Issue(testCtx(t), req)
				if err != nil {
					errs <- err
					return
				}
				if got := creds.JWTSVIDs[0].SVID.Audience; len(got) != 2 {
					errs <- fmt.Errorf("audience = %v", got)
					return
				}
			}
		})
	}
	for range 5 {
		f.setX509(t, f.ca.X509SVID(t, web), f.ca.X509SVID(t, db))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	f := newFixture(t)
	if err := f.iss.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.iss.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if _, err := f.iss.Issue(testCtx(t), &hostapi.IssueRequest{X509: true}); err == nil {
		t.Error("Issue after Close succeeded")
	}
}

func TestRegistered(t *testing.T) {
	m, ok := registry.Lookup(hostapi.KindIssuer, "workloadapi")
	if !ok {
		t.Fatal("issuer.workloadapi is not registered")
	}
	cfg, ok := m.NewConfig().(*workloadapi.Config)
	if !ok || cfg.Address != "" {
		t.Fatalf("NewConfig() = %#v", m.NewConfig())
	}
	srv := fakeworkloadapi.New(t)
	ca := testca.New(t, td)
	srv.SetX509([]*x509svid.SVID{ca.X509SVID(t, web)}, x509bundle.NewSet(ca.X509Bundle()))
	cfg.Address = srv.Path() // a bare path, as spiffe-helper's agent_address
	inst, err := m.New(cfg, registry.Env{Name: "spire"})
	if err != nil {
		t.Fatal(err)
	}
	iss := inst.(hostapi.Issuer)
	defer inst.(interface{ Close() error }).Close()
	if _, ok := inst.(hostapi.Watcher); !ok {
		t.Error("issuer.workloadapi is not a hostapi.Watcher")
	}
	creds, err := iss.Issue(bgCtx(), &hostapi.IssueRequest{X509: true})
	if err != nil || creds.X509SVIDs[0].ID != web {
		t.Fatalf("Issue() = %v, %v", creds, err)
	}
}
