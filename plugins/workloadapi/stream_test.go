package workloadapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/fakeworkloadapi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// many is a fake agent serving one X509-SVID for each of n SPIFFE IDs, as
// for n svid blocks sharing one issuer.
type many struct {
	srv *fakeworkloadapi.Server
	ca  *testca.CA
	ids []spiffeid.ID
	iss *workloadapi.Issuer
}

func newMany(t *testing.T, n int) *many {
	m := &many{srv: fakeworkloadapi.New(t), ca: testca.New(t, td)}
	for i := range n {
		m.ids = append(m.ids, spiffeid.RequireFromPath(td, fmt.Sprintf("/w%02d", i)))
	}
	m.rotate(t)
	m.srv.SetJWTBundles(m.ca.JWTBundle())
	m.iss = newIssuer(t, m.srv)
	return m
}

// rotate serves a fresh X509-SVID for every ID and returns them by ID.
func (m *many) rotate(t *testing.T) map[spiffeid.ID]*x509svid.SVID {
	t.Helper()
	svids := make([]*x509svid.SVID, len(m.ids))
	byID := make(map[spiffeid.ID]*x509svid.SVID, len(m.ids))
	for i, id := range m.ids {
		svids[i] = m.ca.X509SVID(t, id)
		byID[id] = svids[i]
	}
	m.srv.SetX509(svids, x509bundle.NewSet(m.ca.X509Bundle()))
	return byID
}

// waitStreams waits until exactly x509 X.509 streams and jwt JWT bundle
// streams are open on the server.
func (m *many) waitStreams(t *testing.T, x509, jwt int) {
	t.Helper()
	if err := m.srv.WaitFor(testCtx(t), func() bool {
		return m.srv.Streams(fakeworkloadapi.FetchX509SVID) == x509 && m.srv.Streams(fakeworkloadapi.FetchJWTBundles) == jwt
	}); err != nil {
		t.Fatalf("want %d X.509 and %d JWT bundle streams, have %d and %d: %v", x509, jwt,
			m.srv.Streams(fakeworkloadapi.FetchX509SVID), m.srv.Streams(fakeworkloadapi.FetchJWTBundles), err)
	}
}

// only checks that c carries exactly one X509-SVID, want.
func only(t *testing.T, c *hostapi.Credentials, want *x509svid.SVID) {
	t.Helper()
	if len(c.X509SVIDs) != 1 || c.X509SVIDs[0].ID != want.ID || !c.X509SVIDs[0].Certificates[0].Equal(want.Certificates[0]) {
		t.Fatalf("X509-SVIDs = %v, want only the current one of %s", c.X509SVIDs, want.ID)
	}
	if c.X509Bundles == nil || !c.X509Bundles.Has(td) {
		t.Fatalf("X.509 update lacks the bundle")
	}
}

// TestWatchSharesOneStream runs a Watch per identity, as the agent does for
// its svid blocks: the server sees one X.509 stream and one JWT bundle
// stream, and each caller gets only its own SVID, on the first push and on
// a rotation.
func TestWatchSharesOneStream(t *testing.T) {
	const n = 20
	m := newMany(t, n)
	first := m.rotate(t)
	recs := make([]*recorder, n)
	for i, id := range m.ids {
		recs[i] = newRecorder()
		startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: id, X509: true, JWTBundles: i%2 == 0}, recs[i])
	}
	for i, id := range m.ids {
		only(t, nextX509(t, recs[i]), first[id])
	}
	m.waitStreams(t, 1, 1)

	rotated := m.rotate(t)
	for i, id := range m.ids {
		only(t, nextX509(t, recs[i]), rotated[id])
	}
	if got := m.srv.Calls(fakeworkloadapi.FetchX509SVID); got != 1 {
		t.Errorf("FetchX509SVID calls = %d, want 1 shared stream", got)
	}
	if got := m.srv.Calls(fakeworkloadapi.FetchJWTBundles); got != 1 {
		t.Errorf("FetchJWTBundles calls = %d, want 1 shared stream", got)
	}
	for i, r := range recs {
		select {
		case err := <-r.errs:
			t.Errorf("watch %d reported %v", i, err)
		default:
		}
	}
}

// TestWatchLateJoiner joins a running stream: the caller gets the latest
// context from the issuer, without a new stream or a new message from the
// server.
func TestWatchLateJoiner(t *testing.T) {
	m := newMany(t, 3)
	cur := m.rotate(t)
	early := newRecorder()
	startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: m.ids[0], X509: true, JWTBundles: true}, early)
	only(t, nextX509(t, early), cur[m.ids[0]])
	// Both streams are up and have sent their message.
	if err := m.srv.WaitSent(testCtx(t), fakeworkloadapi.FetchJWTBundles, 1); err != nil {
		t.Fatal(err)
	}
	sentX, sentJ := m.srv.Sent(fakeworkloadapi.FetchX509SVID), m.srv.Sent(fakeworkloadapi.FetchJWTBundles)

	late := newRecorder()
	startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: m.ids[2], X509: true, JWTBundles: true}, late)
	var gotX509, gotJWT bool
	for !gotX509 || !gotJWT {
		c := recv(t, late.updates, "the late joiner's updates")
		if c.X509SVIDs != nil {
			only(t, c, cur[m.ids[2]])
			gotX509 = true
		}
		if c.JWTBundles != nil {
			gotJWT = true
		}
	}
	if got := m.srv.Sent(fakeworkloadapi.FetchX509SVID); got != sentX {
		t.Errorf("X.509 messages sent = %d, want still %d: the late joiner waited for the server", got, sentX)
	}
	if got := m.srv.Sent(fakeworkloadapi.FetchJWTBundles); got != sentJ {
		t.Errorf("JWT bundle messages sent = %d, want still %d", got, sentJ)
	}
	if got := m.srv.Calls(fakeworkloadapi.FetchX509SVID); got != 1 {
		t.Errorf("FetchX509SVID calls = %d, want 1", got)
	}
}

// TestWatchLastLeaveStops closes the shared streams when the last caller
// returns, and reopens them for the next one.
func TestWatchLastLeaveStops(t *testing.T) {
	m := newMany(t, 2)
	stops := make([]func() error, 2)
	for i, id := range m.ids {
		r := newRecorder()
		stops[i] = startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: id, X509: true, JWTBundles: true}, r)
		nextX509(t, r)
	}
	m.waitStreams(t, 1, 1)
	if err := stops[0](); err != nil {
		t.Fatal(err)
	}
	// One caller left: the streams stay up for the other. A rotation
	// still reaches it.
	other := newRecorder()
	stopOther := startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: m.ids[1], X509: true}, other)
	nextX509(t, other)
	if err := stops[1](); err != nil {
		t.Fatal(err)
	}
	rotated := m.rotate(t)
	only(t, nextX509(t, other), rotated[m.ids[1]])
	m.waitStreams(t, 1, 0) // the JWT bundle stream had no caller left
	if err := stopOther(); err != nil {
		t.Fatal(err)
	}
	// Watch returned after the stream's goroutine exited; the server sees
	// the stream close.
	m.waitStreams(t, 0, 0)
	if got := m.srv.Calls(fakeworkloadapi.FetchX509SVID); got != 1 {
		t.Fatalf("FetchX509SVID calls = %d before the reopen, want 1", got)
	}

	again := newRecorder()
	startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: m.ids[0], X509: true}, again)
	only(t, nextX509(t, again), rotated[m.ids[0]])
	m.waitStreams(t, 1, 0)
	if got := m.srv.Calls(fakeworkloadapi.FetchX509SVID); got != 2 {
		t.Errorf("FetchX509SVID calls = %d, want 2: the stream reopened", got)
	}
}

// TestWatchSelection selects on one shared stream per caller, including
// an SVID whose ID is offered twice, and reports a selection that matches
// nothing to that caller only.
func TestWatchSelection(t *testing.T) {
	srv := fakeworkloadapi.New(t)
	ca := testca.New(t, td)
	webExt := ca.X509SVID(t, web, testca.WithHint("external"))
	dbInt := ca.X509SVID(t, db, testca.WithHint("internal"))
	dbBak := ca.X509SVID(t, db, testca.WithHint("backup"))
	srv.SetX509([]*x509svid.SVID{webExt, dbInt, dbBak}, x509bundle.NewSet(ca.X509Bundle()))
	iss := newIssuer(t, srv)

	tests := []struct {
		name    string
		req     hostapi.IssueRequest
		want    []*x509svid.SVID
		wantErr string
	}{
		{name: "first by default", want: []*x509svid.SVID{webExt}},
		{name: "by SPIFFE ID, the first of two", req: hostapi.IssueRequest{SPIFFEID: db}, want: []*x509svid.SVID{dbInt}},
		{name: "by SPIFFE ID and hint, the second of two", req: hostapi.IssueRequest{SPIFFEID: db, Hint: "backup"}, want: []*x509svid.SVID{dbBak}},
		{name: "by hint", req: hostapi.IssueRequest{Hint: "backup"}, want: []*x509svid.SVID{dbBak}},
		{name: "all", req: hostapi.IssueRequest{All: true}, want: []*x509svid.SVID{webExt, dbInt, dbBak}},
		{name: "unknown ID", req: hostapi.IssueRequest{SPIFFEID: ghost}, wantErr: `no X509-SVID with SPIFFE ID "spiffe://example.org/ghost" among [spiffe://example.org/web (hint "external"), spiffe://example.org/db (hint "internal"), spiffe://example.org/db (hint "backup")]; check spiffe_id`},
		{name: "ID and mismatched hint", req: hostapi.IssueRequest{SPIFFEID: web, Hint: "backup"}, wantErr: "check spiffe_id and hint"},
		{name: "unknown hint", req: hostapi.IssueRequest{Hint: "nope"}, wantErr: `no X509-SVID with hint "nope"`},
	}
	recs := make([]*recorder, len(tests))
	for i, tt := range tests {
		recs[i] = newRecorder()
		req := tt.req
		req.X509 = true
		startWatch(t, iss, &req, recs[i])
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := recs[i]
			if tt.wantErr != "" {
				err := recv(t, r.errs, "a selection report")
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "selecting an X509-SVID from the Workload API at "+srv.Addr()) {
					t.Errorf("report = %v, want it to contain %q", err, tt.wantErr)
				}
				select {
				case c := <-r.updates:
					t.Errorf("a caller whose selection fails got an update: %v", c.X509SVIDs)
				default:
				}
				return
			}
			c := nextX509(t, r)
			if len(c.X509SVIDs) != len(tt.want) {
				t.Fatalf("X509-SVIDs = %v, want %d", c.X509SVIDs, len(tt.want))
			}
			for j, s := range c.X509SVIDs {
				if !s.Certificates[0].Equal(tt.want[j].Certificates[0]) || s.Hint != tt.want[j].Hint {
					t.Errorf("X509-SVID %d = %s (hint %q), want %s (hint %q)", j, s.ID, s.Hint, tt.want[j].ID, tt.want[j].Hint)
				}
			}
			select {
			case err := <-r.errs:
				t.Errorf("a caller whose selection matches got a report: %v", err)
			default:
			}
		})
	}
	if got := srv.Calls(fakeworkloadapi.FetchX509SVID); got != 1 {
		t.Errorf("FetchX509SVID calls = %d, want 1", got)
	}
}

// TestWatchStreamErrorsReachEveryone reports a stream error to every
// caller; after it clears, every caller gets the context again.
func TestWatchStreamErrorsReachEveryone(t *testing.T) {
	m := newMany(t, 3)
	recs := make([]*recorder, len(m.ids))
	for i, id := range m.ids {
		recs[i] = newRecorder()
		startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: id, X509: true}, recs[i])
		nextX509(t, recs[i])
	}
	m.srv.SetError(fakeworkloadapi.FetchX509SVID, status.Error(codes.Unavailable, "agent is busy"))
	for i, r := range recs {
		if err := recv(t, r.errs, fmt.Sprintf("watch %d's report", i)); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "watching X509-SVIDs") {
			t.Errorf("watch %d: report = %v, want Unavailable while watching X509-SVIDs", i, err)
		}
	}
	rotated := m.rotate(t)
	m.srv.SetError(fakeworkloadapi.FetchX509SVID, nil)
	for i, id := range m.ids {
		only(t, nextX509(t, recs[i]), rotated[id])
	}
}

// TestWatchFatalErrorEndsEveryone ends every caller's Watch with the
// wrapped error when the shared stream cannot be retried, closes the other
// stream, and lets a later caller start over.
func TestWatchFatalErrorEndsEveryone(t *testing.T) {
	m := newMany(t, 3)
	dones := make([]chan error, len(m.ids))
	for i, id := range m.ids {
		r := newRecorder()
		dones[i] = make(chan error, 1)
		req := &hostapi.IssueRequest{SPIFFEID: id, X509: true, JWTBundles: i == 0}
		go func() { dones[i] <- m.iss.Watch(t.Context(), req, r.update, r.report) }()
		nextX509(t, r)
	}
	m.srv.SetError(fakeworkloadapi.FetchX509SVID, status.Error(codes.InvalidArgument, "bad request"))
	for i, done := range dones {
		err := recv(t, done, fmt.Sprintf("watch %d to give up", i))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "watching X509-SVIDs") {
			t.Errorf("watch %d: Watch() = %v, want InvalidArgument while watching X509-SVIDs", i, err)
		}
	}
	m.waitStreams(t, 0, 0)

	m.srv.SetError(fakeworkloadapi.FetchX509SVID, nil)
	r := newRecorder()
	startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: m.ids[1], X509: true}, r)
	nextX509(t, r)
	if got := m.srv.Calls(fakeworkloadapi.FetchX509SVID); got != 2 {
		t.Errorf("FetchX509SVID calls = %d, want 2: a new stream after the fatal error", got)
	}
}

// TestWatchSlowCaller blocks one caller in update: the others still get
// every rotation, and the slow one, released, skips to the latest.
func TestWatchSlowCaller(t *testing.T) {
	m := newMany(t, 2)
	entered := make(chan *hostapi.Credentials, 8)
	release := make(chan struct{})
	slowDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); close(release); recv(t, slowDone, "the slow Watch to return") }()
	go func() {
		slowDone <- m.iss.Watch(ctx, &hostapi.IssueRequest{SPIFFEID: m.ids[0], X509: true}, func(c *hostapi.Credentials) {
			entered <- c
			<-release
		}, func(error) {})
	}()
	recv(t, entered, "the slow caller's first update") // it now blocks in update

	fast := newRecorder()
	startWatch(t, m.iss, &hostapi.IssueRequest{SPIFFEID: m.ids[1], X509: true}, fast)
	nextX509(t, fast)
	var rots []map[spiffeid.ID]*x509svid.SVID
	for range 3 {
		last := m.rotate(t)
		rots = append(rots, last)
		want := last[m.ids[1]].Certificates[0]
		for c := nextX509(t, fast); !c.X509SVIDs[0].Certificates[0].Equal(want); c = nextX509(t, fast) {
		}
	}

	// The fast caller got the third rotation, so the second was posted to
	// every caller before it (a rotation is fanned out whole before the
	// next): the slow caller's mailbox, which keeps only the latest, no
	// longer holds the first. Released, it gets the second or the third,
	// and then the third.
	first, last := rots[0][m.ids[0]], rots[2][m.ids[0]]
	for {
		release <- struct{}{}
		c := recv(t, entered, "the slow caller's next update")
		if len(c.X509SVIDs) == 1 && c.X509SVIDs[0].Certificates[0].Equal(first.Certificates[0]) {
			t.Fatal("the slow caller got the first rotation, which two later ones replaced in its mailbox")
		}
		if len(c.X509SVIDs) == 1 && c.X509SVIDs[0].Certificates[0].Equal(last.Certificates[0]) {
			only(t, c, last)
			return
		}
		only(t, c, rots[1][m.ids[0]])
	}
}

// TestWatchAfterClose ends every Watch when the issuer closes, closes the
// streams, and refuses new ones.
func TestWatchAfterClose(t *testing.T) {
	m := newMany(t, 2)
	dones := make([]chan error, len(m.ids))
	for i, id := range m.ids {
		r := newRecorder()
		dones[i] = make(chan error, 1)
		req := &hostapi.IssueRequest{SPIFFEID: id, X509: true, JWTBundles: true}
		go func() { dones[i] <- m.iss.Watch(t.Context(), req, r.update, r.report) }()
		nextX509(t, r)
	}
	m.waitStreams(t, 1, 1)
	if err := m.iss.Close(); err != nil {
		t.Fatal(err)
	}
	for i, done := range dones {
		if err := recv(t, done, fmt.Sprintf("watch %d to end", i)); err == nil || !strings.Contains(err.Error(), "the issuer is closed") {
			t.Errorf("watch %d: Watch() = %v after Close, want the issuer is closed", i, err)
		}
	}
	m.waitStreams(t, 0, 0)
	err := m.iss.Watch(t.Context(), &hostapi.IssueRequest{X509: true}, func(*hostapi.Credentials) {}, func(error) {})
	if err == nil || !strings.Contains(err.Error(), "the issuer is closed") {
		t.Errorf("Watch() after Close = %v, want the issuer is closed", err)
	}
}

// TestWatchHammer joins and leaves the shared streams from many goroutines
// while the server rotates, under -race: every update carries the
// caller's own SVID, and the streams close at the end.
func TestWatchHammer(t *testing.T) {
	m := newMany(t, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range 8 {
		wg.Go(func() {
			for n := range 15 {
				id := m.ids[(g+n)%len(m.ids)]
				ctx, cancel := context.WithCancel(testCtx(t))
				got := make(chan spiffeid.ID, 64)
				done := make(chan error, 1)
				go func() {
					done <- m.iss.Watch(ctx, &hostapi.IssueRequest{SPIFFEID: id, X509: true, JWTBundles: n%3 == 0}, func(c *hostapi.Credentials) {
						if c.X509SVIDs != nil {
							select {
							case got <- c.X509SVIDs[0].ID:
							default:
							}
						}
					}, func(error) {})
				}()
				var first spiffeid.ID
				select {
				case first = <-got:
				case <-ctx.Done():
				}
				cancel()
				if err := <-done; err != nil {
					fail(err)
				}
				close(got)
				for other := range got {
					if other != id {
						fail(fmt.Errorf("watch for %s got %s", id, other))
					}
				}
				if first != id {
					fail(fmt.Errorf("watch for %s got %v first", id, first))
				}
			}
		})
	}
	for range 30 {
		m.rotate(t)
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	m.waitStreams(t, 0, 0)
}
