package adapter

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Handler serves host API v1 calls as raw method names and protobuf bytes;
// sdk/inproc.Plugin implements it.
type Handler interface {
	Handle(ctx context.Context, method string, payload []byte) (code uint32, msg string, resp []byte)
}

// LocalConn is an in-memory [Conn] to a plugin served in-process by h:
// every call crosses the same protobuf encoding as the runtimes'. It
// exists for the conformance suite, which runs in-process plugins (the
// built-ins, SDK plugins under test) through the same checks as WASM and
// subprocess ones.
//
// Like the runtimes, it honours ctx: a call whose context ends first
// answers DEADLINE_EXCEEDED or CANCELLED at once; the plugin's code keeps
// running on its own goroutine until it returns.
type LocalConn struct{ h Handler }

// NewLocalConn returns a Conn served by h.
func NewLocalConn(h Handler) *LocalConn { return &LocalConn{h: h} }

// Invoke implements Conn.
func (c *LocalConn) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.Internal, "encoding the request: %v", err)
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	type answer struct {
		code uint32
		msg  string
		out  []byte
	}
	done := make(chan answer, 1)
	go func() {
		code, msg, out := c.h.Handle(ctx, method, b)
		done <- answer{code, msg, out}
	}()
	select {
	case a := <-done:
		if a.code != 0 {
			return status.Error(codes.Code(a.code), a.msg)
		}
		if err := proto.Unmarshal(a.out, resp); err != nil {
			return status.Errorf(codes.Internal, "decoding the response: %v", err)
		}
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Close implements Conn; there is nothing to release.
func (*LocalConn) Close() error { return nil }
