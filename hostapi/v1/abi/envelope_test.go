package abi_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
)

func TestRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		method  string
		payload []byte
		wantErr bool
	}{
		{name: "empty", in: nil, wantErr: true},
		{name: "short header", in: []byte{1, 0, 0}, wantErr: true},
		{name: "empty method and payload", in: []byte{0, 0, 0, 0}, method: "", payload: []byte{}},
		{name: "method only", in: []byte{2, 0, 0, 0, 'a', '/'}, method: "a/", payload: []byte{}},
		{name: "method and payload", in: []byte{1, 0, 0, 0, 'm', 9, 8}, method: "m", payload: []byte{9, 8}},
		{name: "method too long", in: []byte{3, 0, 0, 0, 'a', 'b'}, wantErr: true},
		{name: "huge length", in: []byte{0xff, 0xff, 0xff, 0xff, 'a'}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p, err := abi.DecodeRequest(tt.in)
			if tt.wantErr {
				if !errors.Is(err, abi.ErrMalformed) {
					t.Fatalf("DecodeRequest(%x) error = %v, want ErrMalformed", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRequest(%x): %v", tt.in, err)
			}
			if m != tt.method || !bytes.Equal(p, tt.payload) {
				t.Fatalf("DecodeRequest(%x) = %q, %x; want %q, %x", tt.in, m, p, tt.method, tt.payload)
			}
			if got := abi.EncodeRequest(m, p); !bytes.Equal(got, tt.in) {
				t.Fatalf("EncodeRequest(%q, %x) = %x, want %x", m, p, got, tt.in)
			}
		})
	}
}

func TestResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		code    uint32
		msg     string
		payload []byte
		wantErr bool
	}{
		{name: "empty", in: nil, wantErr: true},
		{name: "short header", in: []byte{0, 0, 0, 0, 0, 0, 0}, wantErr: true},
		{name: "ok empty", in: []byte{0, 0, 0, 0, 0, 0, 0, 0}, payload: []byte{}},
		{name: "ok payload", in: []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0}, payload: []byte{0x0a, 0}},
		{name: "error message", in: []byte{13, 0, 0, 0, 2, 0, 0, 0, 'n', 'o'}, code: 13, msg: "no", payload: []byte{}},
		{name: "message too long", in: []byte{13, 0, 0, 0, 3, 0, 0, 0, 'n', 'o'}, wantErr: true},
		{name: "huge length", in: []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, m, p, err := abi.DecodeResponse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, abi.ErrMalformed) {
					t.Fatalf("DecodeResponse(%x) error = %v, want ErrMalformed", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeResponse(%x): %v", tt.in, err)
			}
			if c != tt.code || m != tt.msg || !bytes.Equal(p, tt.payload) {
				t.Fatalf("DecodeResponse(%x) = %d, %q, %x; want %d, %q, %x", tt.in, c, m, p, tt.code, tt.msg, tt.payload)
			}
			if got := abi.EncodeResponse(c, m, p); !bytes.Equal(got, tt.in) {
				t.Fatalf("EncodeResponse = %x, want %x", got, tt.in)
			}
		})
	}
}

// FuzzDecode checks that the decoders never panic on arbitrary bytes, and
// that whatever they accept re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(abi.EncodeRequest("svidagent.plugin.notifier.v1.Notifier/Notify", []byte{0x0a, 0x03, 'w', 'e', 'b'}))
	f.Add(abi.EncodeResponse(13, "trapped", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, p, err := abi.DecodeRequest(b); err == nil {
			if got := abi.EncodeRequest(m, p); !bytes.Equal(got, b) {
				t.Fatalf("request round trip: %x became %x", b, got)
			}
		}
		if c, m, p, err := abi.DecodeResponse(b); err == nil {
			if got := abi.EncodeResponse(c, m, p); !bytes.Equal(got, b) {
				t.Fatalf("response round trip: %x became %x", b, got)
			}
		}
	})
}

func ExampleEncodeRequest() {
	b := abi.EncodeRequest("svidagent.plugin.v1.Plugin/Close", nil)
	method, payload, err := abi.DecodeRequest(b)
	fmt.Printf("% x\n%q %d %v\n", b[:4], method, len(payload), err)
	// Output:
	// 20 00 00 00
	// "svidagent.plugin.v1.Plugin/Close" 0 <nil>
}

func ExampleEncodeResponse() {
	b := abi.EncodeResponse(5, "no such svid", nil)
	code, msg, _, err := abi.DecodeResponse(b)
	fmt.Println(code, msg, err)
	// Output:
	// 5 no such svid <nil>
}
