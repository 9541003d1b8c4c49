package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed envelope")

// EncodeRequest returns the request envelope of method and payload:
// u32 len(method), method, payload.
func EncodeRequest(method string, payload []byte) []byte {
	b := make([]byte, 4+len(method)+len(payload))
	binary.LittleEndian.PutUint32(b, uint32(len(method)))
	n := 4 + copy(b[4:], method)
	copy(b[n:], payload)
	return b
}

// DecodeRequest splits a request envelope. The payload aliases b.
func DecodeRequest(b []byte) (method string, payload []byte, err error) {
	if len(b) < 4 {
		return "", nil, fmt.Errorf("decoding request: %d bytes, need at least 4: %w", len(b), ErrMalformed)
	}
	m := binary.LittleEndian.Uint32(b)
	if uint64(m) > uint64(len(b)-4) {
		return "", nil, fmt.Errorf("decoding request: method length %d exceeds the %d bytes left: %w", m, len(b)-4, ErrMalformed)
	}
	return string(b[4 : 4+m]), b[4+m:], nil
}

// EncodeResponse returns the response envelope of code, msg and payload:
// u32 code, u32 len(msg), msg, payload.
func EncodeResponse(code uint32, msg string, payload []byte) []byte {
	b := make([]byte, 8+len(msg)+len(payload))
	binary.LittleEndian.PutUint32(b, code)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(msg)))
	n := 8 + copy(b[8:], msg)
	copy(b[n:], payload)
	return b
}

// DecodeResponse splits a response envelope. The payload aliases b.
func DecodeResponse(b []byte) (code uint32, msg string, payload []byte, err error) {
	if len(b) < 8 {
		return 0, "", nil, fmt.Errorf("decoding response: %d bytes, need at least 8: %w", len(b), ErrMalformed)
	}
	code = binary.LittleEndian.Uint32(b)
	l := binary.LittleEndian.Uint32(b[4:])
	if uint64(l) > uint64(len(b)-8) {
		return 0, "", nil, fmt.Errorf("decoding response: message length %d exceeds the %d bytes left: %w", l, len(b)-8, ErrMalformed)
	}
	return code, string(b[8 : 8+l]), b[8+l:], nil
}
