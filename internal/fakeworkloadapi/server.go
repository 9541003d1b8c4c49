package fakeworkloadapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/internal/testca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Method names a Workload API method.
type Method string

// The Workload API methods the server counts and can fail.
const (
	FetchX509SVID    Method = "FetchX509SVID"
	FetchX509Bundles Method = "FetchX509Bundles"
	FetchJWTSVID     Method = "FetchJWTSVID"
	FetchJWTBundles  Method = "FetchJWTBundles"
	ValidateJWTSVID  Method = "ValidateJWTSVID"
)

// ErrNoIdentity is what the server answers while it has nothing to serve,
// as a SPIRE agent does for a workload with no registration entry.
var ErrNoIdentity = status.Error(codes.PermissionDenied, "no identity issued")

// JWTSVIDFunc answers a FetchJWTSVID call.
type JWTSVIDFunc func(*workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error)

// Server is a fake Workload API. Its methods are safe for concurrent use.
type Server struct {
	t    testing.TB
	dir  string
	path string

	mu      sync.Mutex
	gs      *grpc.Server
	serving sync.WaitGroup // the Serve goroutine of gs
	changed chan struct{}  // closed and replaced on every change

	x509        *workload.X509SVIDResponse
	x509Bundles *workload.X509BundlesResponse
	jwtBundles  *workload.JWTBundlesResponse
	x509Ver     uint64
	jwtBndlVer  uint64
	jwtFunc     JWTSVIDFunc
	jwtReqs     []*workload.JWTSVIDRequest
	errs        map[Method]error
	calls       map[Method]int
	sent        map[Method]int
	streams     map[Method]int
}

// New starts a server on a unix socket in a fresh, short temporary
// directory. It serves until t's cleanup, which stops it and removes the
// directory.
func New(t testing.TB) *Server {
	t.Helper()
	// t.TempDir paths can exceed the 108-byte limit of a socket path.
	dir, err := os.MkdirTemp("", "fwapi")
	if err != nil {
		t.Fatalf("fakeworkloadapi: creating socket directory: %v", err)
	}
	s := &Server{
		t:       t,
		dir:     dir,
		path:    filepath.Join(dir, "agent.sock"),
		changed: make(chan struct{}),
		errs:    map[Method]error{},
		calls:   map[Method]int{},
		sent:    map[Method]int{},
		streams: map[Method]int{},
	}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	if err := s.start(); err != nil {
		t.Fatalf("fakeworkloadapi: %v", err)
	}
	return s
}

// Addr returns the server's address, "unix:///path/to/agent.sock".
func (s *Server) Addr() string { return "unix://" + s.path }

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Stop stops serving: open streams end with Unavailable on the client side,
// the socket is closed and removed, and new calls fail until [Server.Restart].
// What the server serves is kept. Stop is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	gs := s.gs
	s.gs = nil
	s.mu.Unlock()
	if gs == nil {
		return
	}
	gs.Stop()
	s.serving.Wait()
}

// Restart starts serving again on the same socket path, after [Server.Stop].
// It fails the test if the server is already serving.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("fakeworkloadapi: restarting: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gs != nil {
		return errors.New("server is already serving")
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	lis, err := net.Listen("unix", s.path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.path, err)
	}
	gs := grpc.NewServer(
		grpc.UnaryInterceptor(s.unaryInterceptor),
		grpc.StreamInterceptor(s.streamInterceptor),
	)
	workload.RegisterSpiffeWorkloadAPIServer(gs, &handler{s: s})
	s.gs = gs
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = gs.Serve(lis)
	}()
	return nil
}

// SetX509 sets the X509-SVIDs served, in order, and pushes them to every
// open FetchX509SVID stream. bundles must hold the bundle of each SVID's
// trust domain; federated bundles are sent as federated. FetchX509Bundles
// streams receive all the bundles. SetX509(nil, nil) serves nothing again
// (open streams end with PermissionDenied "no identity issued"). An SVID's
// Hint is sent as its hint.
func (s *Server) SetX509(svids []*x509svid.SVID, bundles *x509bundle.Set, federated ...*x509bundle.Bundle) {
	s.t.Helper()
	if len(svids) == 0 {
		s.setX509(nil, nil)
		return
	}
	resp := &workload.X509SVIDResponse{}
	all := &workload.X509BundlesResponse{Bundles: map[string][]byte{}}
	if bundles != nil {
		for _, b := range bundles.Bundles() {
			all.Bundles[b.TrustDomain().IDString()] = concatDER(b)
		}
	}
	for _, svid := range svids {
		certs, key, err := svid.MarshalRaw()
		if err != nil {
			s.t.Fatalf("fakeworkloadapi: marshalling X509-SVID %s: %v", svid.ID, err)
		}
		var b *x509bundle.Bundle
		if bundles != nil {
			b, _ = bundles.Get(svid.ID.TrustDomain())
		}
		if b == nil {
			s.t.Fatalf("fakeworkloadapi: no bundle for trust domain %q of X509-SVID %s", svid.ID.TrustDomain(), svid.ID)
		}
		resp.Svids = append(resp.Svids, &workload.X509SVID{
			SpiffeId:    svid.ID.String(),
			X509Svid:    certs,
			X509SvidKey: key,
			Bundle:      concatDER(b),
			Hint:        svid.Hint,
		})
	}
	if len(federated) > 0 {
		resp.FederatedBundles = map[string][]byte{}
		for _, b := range federated {
			resp.FederatedBundles[b.TrustDomain().IDString()] = concatDER(b)
			all.Bundles[b.TrustDomain().IDString()] = concatDER(b)
		}
	}
	s.setX509(resp, all)
}

// SetX509Response sets the raw FetchX509SVID response and pushes it to every
// open stream; nil serves nothing again. FetchX509Bundles is unaffected.
func (s *Server) SetX509Response(resp *workload.X509SVIDResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.x509 = cloneOrNil(resp)
	s.x509Ver++
	s.broadcastLocked()
}

func (s *Server) setX509(resp *workload.X509SVIDResponse, bundles *workload.X509BundlesResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.x509 = resp
	s.x509Bundles = bundles
	s.x509Ver++
	s.broadcastLocked()
}

// SetJWTBundles sets the JWT bundles served and pushes them to every open
// FetchJWTBundles stream. With no bundles it serves nothing again.
func (s *Server) SetJWTBundles(bundles ...*jwtbundle.Bundle) {
	s.t.Helper()
	var resp *workload.JWTBundlesResponse
	if len(bundles) > 0 {
		resp = &workload.JWTBundlesResponse{Bundles: map[string][]byte{}}
		for _, b := range bundles {
			jwks, err := b.Marshal()
			if err != nil {
				s.t.Fatalf("fakeworkloadapi: marshalling JWT bundle of %q: %v", b.TrustDomain(), err)
			}
			resp.Bundles[b.TrustDomain().IDString()] = jwks
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtBundles = resp
	s.jwtBndlVer++
	s.broadcastLocked()
}

// SetJWTSVIDFunc sets what answers FetchJWTSVID. Until it is set, or after
// it is set to nil, FetchJWTSVID answers PermissionDenied "no identity
// issued". f runs on a server goroutine: it must not call t.Fatal.
func (s *Server) SetJWTSVIDFunc(f JWTSVIDFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtFunc = f
}

// JWTSVIDsFrom returns a JWTSVIDFunc that mints real JWT-SVIDs with ca, valid
// for ttl: for the requested SPIFFE ID when the request names one (which
// must be among ids, or the answer is PermissionDenied), else for every id.
func JWTSVIDsFrom(ca *testca.CA, ttl time.Duration, ids ...spiffeid.ID) JWTSVIDFunc {
	return func(req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
		want := ids
		if req.SpiffeId != "" {
			want = nil
			for _, id := range ids {
				if id.String() == req.SpiffeId {
					want = append(want, id)
				}
			}
			if len(want) == 0 {
				return nil, status.Errorf(codes.PermissionDenied, "no identity issued for %q", req.SpiffeId)
			}
		}
		resp := &workload.JWTSVIDResponse{}
		for _, id := range want {
			token, err := ca.SignJWT(id, req.Audience, time.Now().Add(ttl))
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			resp.Svids = append(resp.Svids, &workload.JWTSVID{SpiffeId: id.String(), Svid: token})
		}
		return resp, nil
	}
}

// SetError makes calls of m fail with err (a gRPC status error, such as
// status.Error(codes.Unavailable, "...")); open streams of m end with it.
// SetError(m, nil) clears it.
func (s *Server) SetError(m Method, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.errs, m)
	} else {
		s.errs[m] = err
	}
	s.broadcastLocked()
}

// Calls returns how many calls of m the server received, including the
// ones it rejected.
func (s *Server) Calls(m Method) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[m]
}

// Sent returns how many responses the server sent for m: stream messages
// for streaming methods, successful answers for unary ones.
func (s *Server) Sent(m Method) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[m]
}

// Streams returns how many streams of m are open.
func (s *Server) Streams(m Method) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[m]
}

// JWTRequests returns the FetchJWTSVID requests received, in order.
func (s *Server) JWTRequests() []*workload.JWTSVIDRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*workload.JWTSVIDRequest, len(s.jwtReqs))
	for i, r := range s.jwtReqs {
		out[i] = proto.Clone(r).(*workload.JWTSVIDRequest)
	}
	return out
}

// WaitFor blocks until cond returns true or ctx is done. cond is evaluated
// after every change to the server's state or counters; it may call the
// server's accessors.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the fake Workload API: %w", ctx.Err())
		}
	}
}

// WaitSent blocks until at least n responses were sent for m.
func (s *Server) WaitSent(ctx context.Context, m Method, n int) error {
	return s.WaitFor(ctx, func() bool { return s.Sent(m) >= n })
}

// WaitCalls blocks until at least n calls of m were received.
func (s *Server) WaitCalls(ctx context.Context, m Method, n int) error {
	return s.WaitFor(ctx, func() bool { return s.Calls(m) >= n })
}

// WaitStreams blocks until at least n streams of m are open.
func (s *Server) WaitStreams(ctx context.Context, m Method, n int) error {
	return s.WaitFor(ctx, func() bool { return s.Streams(m) >= n })
}

func (s *Server) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) count(counter map[Method]int, m Method, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counter[m] += delta
	s.broadcastLocked()
}

// checkHeader rejects a call without the security header, as an agent does.
func checkHeader(ctx context.Context) error {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(md.Get("workload.spiffe.io")) != 1 || md.Get("workload.spiffe.io")[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.count(s.calls, Method(path.Base(info.FullMethod)), 1)
	if err := checkHeader(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	s.count(s.calls, Method(path.Base(info.FullMethod)), 1)
	if err := checkHeader(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

// stream serves one streaming call: it sends the current message whenever
// its version changes, and ends on an injected error, on "no identity", or
// when the call ends.
func (s *Server) stream(ctx context.Context, m Method, current func() (proto.Message, uint64), send func(proto.Message) error) error {
	s.count(s.streams, m, 1)
	defer s.count(s.streams, m, -1)
	var last uint64
	first := true
	for {
		s.mu.Lock()
		err := s.errs[m]
		msg, ver := current()
		ch := s.changed
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if msg == nil {
			return ErrNoIdentity
		}
		if first || ver != last {
			if err := send(msg); err != nil {
				return err
			}
			first, last = false, ver
			s.count(s.sent, m, 1)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

type handler struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	s *Server
}

func (h *handler) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	return h.s.stream(stream.Context(), FetchX509SVID,
		func() (proto.Message, uint64) { return nilIfNil(h.s.x509), h.s.x509Ver },
		func(m proto.Message) error { return stream.Send(m.(*workload.X509SVIDResponse)) })
}

func (h *handler) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	return h.s.stream(stream.Context(), FetchX509Bundles,
		func() (proto.Message, uint64) { return nilIfNil(h.s.x509Bundles), h.s.x509Ver },
		func(m proto.Message) error { return stream.Send(m.(*workload.X509BundlesResponse)) })
}

func (h *handler) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	return h.s.stream(stream.Context(), FetchJWTBundles,
		func() (proto.Message, uint64) { return nilIfNil(h.s.jwtBundles), h.s.jwtBndlVer },
		func(m proto.Message) error { return stream.Send(m.(*workload.JWTBundlesResponse)) })
}

func (h *handler) FetchJWTSVID(_ context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	s := h.s
	s.mu.Lock()
	s.jwtReqs = append(s.jwtReqs, proto.Clone(req).(*workload.JWTSVIDRequest))
	err := s.errs[FetchJWTSVID]
	f := s.jwtFunc
	s.broadcastLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, ErrNoIdentity
	}
	if len(req.Audience) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	resp, err := f(req)
	if err != nil {
		return nil, err
	}
	s.count(s.sent, FetchJWTSVID, 1)
	return resp, nil
}

func (h *handler) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	h.s.mu.Lock()
	err := h.s.errs[ValidateJWTSVID]
	h.s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return h.UnimplementedSpiffeWorkloadAPIServer.ValidateJWTSVID(ctx, req)
}

// nilIfNil turns a typed nil message into an untyped nil.
func nilIfNil[M interface {
	proto.Message
	comparable
}](m M) proto.Message {
	var zero M
	if m == zero {
		return nil
	}
	return m
}

func cloneOrNil(resp *workload.X509SVIDResponse) *workload.X509SVIDResponse {
	if resp == nil {
		return nil
	}
	return proto.Clone(resp).(*workload.X509SVIDResponse)
}

func concatDER(b *x509bundle.Bundle) []byte {
	var buf bytes.Buffer
	for _, c := range b.X509Authorities() {
		buf.Write(c.Raw)
	}
	return buf.Bytes()
}
