package adapter_test

import (
	"context"
	"sync"

	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// handler serves one method: it gets the encoded request and returns the
// encoded response, or a status error.
type handler func(ctx context.Context, req []byte) ([]byte, error)

// fakeConn is an in-memory adapter.Conn: every call goes through the
// protobuf encoding both runtimes use, and is recorded, encoded, so that
// tests can inspect what crossed the boundary.
type fakeConn struct {
	mu       sync.Mutex
	handlers map[string]handler
	calls    []call
	closed   int
}

type call struct {
	method string
	req    []byte
}

func newFakeConn() *fakeConn { return &fakeConn{handlers: map[string]handler{}} }

func (c *fakeConn) handle(method string, h handler) *fakeConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[method] = h
	return c
}

func (c *fakeConn) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	c.mu.Lock()
	c.calls = append(c.calls, call{method: method, req: b})
	h := c.handlers[method]
	closed := c.closed > 0
	c.mu.Unlock()
	if closed {
		return status.Error(codes.Unavailable, "connection closed")
	}
	if h == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	out, err := h(ctx, b)
	if err != nil {
		return err
	}
	return proto.Unmarshal(out, resp)
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return nil
}

// methods returns the methods called, in order.
func (c *fakeConn) methods() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, cl := range c.calls {
		out = append(out, cl.method)
	}
	return out
}

func (c *fakeConn) count(method string) int {
	n := 0
	for _, m := range c.methods() {
		if m == method {
			n++
		}
	}
	return n
}

// lastReq returns the encoded request of the last call of method.
func (c *fakeConn) lastReq(method string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.calls) - 1; i >= 0; i-- {
		if c.calls[i].method == method {
			return c.calls[i].req
		}
	}
	return nil
}

func (c *fakeConn) closeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

var _ adapter.Conn = (*fakeConn)(nil)

// reply encodes m for a handler.
func reply(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

// ok answers with an empty message.
func ok(context.Context, []byte) ([]byte, error) { return nil, nil }
