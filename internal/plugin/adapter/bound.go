package adapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// MaxTextBytes caps the bytes of one piece of plugin-supplied text (an
// error message, a log line, a name) as the host keeps it: in its log, in
// /ready, /live and /status, and in `svidagent status`.
const MaxTextBytes = 1 << 10

// BoundText returns s as the host may show it: every byte that is not
// printable (control bytes such as ESC, invalid UTF-8, Unicode format
// characters such as bidi overrides) escaped Go-style ("\x1b", "\u202e"),
// and the result cut at [MaxTextBytes] with a "… (N bytes truncated)"
// marker, N counting the bytes of s left out. It returns s itself when s
// needs neither.
//
// Every piece of plugin-controlled text passes through it where it enters
// the host: Conn errors, Describe's strings and Validate's problems here,
// log lines in internal/plugin/services.
func BoundText(s string) string {
	if len(s) <= MaxTextBytes && printable(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), MaxTextBytes) + 32)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+size]
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case !isPrint(r):
			q := strconv.QuoteRuneToASCII(r)
			piece = q[1 : len(q)-1]
		}
		if b.Len()+len(piece) > MaxTextBytes {
			fmt.Fprintf(&b, "… (%d bytes truncated)", len(s)-i)
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// isPrint reports whether r is shown as itself: printable, or a plain
// space.
func isPrint(r rune) bool { return r == ' ' || unicode.IsPrint(r) }

func printable(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !isPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// boundErr bounds the message of an error a Conn returned with
// [BoundText], keeping its gRPC status code. An error that needs no
// bounding is returned as is, with its chain.
func boundErr(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		msg := st.Message()
		if b := BoundText(msg); b != msg {
			return status.Error(st.Code(), b)
		}
		return err
	}
	msg := err.Error()
	if b := BoundText(msg); b != msg {
		return errors.New(b)
	}
	return err
}

// boundedConn bounds the errors of the Conn below it.
type boundedConn struct{ Conn }

func (c boundedConn) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	return boundErr(c.Conn.Invoke(ctx, method, req, resp))
}

// bound returns conn with its errors bounded, once.
func bound(conn Conn) Conn {
	if _, ok := conn.(boundedConn); ok {
		return conn
	}
	return boundedConn{conn}
}

// boundAll bounds each of ss with [BoundText].
func boundAll(ss []string) []string {
	for i, s := range ss {
		ss[i] = BoundText(s)
	}
	return ss
}
