package distinct

import (
	"bytes"
	"testing"
)

// TestAppend checks the section against the binary format: id 0, the
// body's size in LEB128, the name's length and bytes, the payload; a body
// of 128 bytes or more needs a two-byte size.
func TestAppend(t *testing.T) {
	mod := []byte("\x00asm\x01\x00\x00\x00")
	got := Append(mod, "n", "p")
	want := append(append([]byte(nil), mod...), 0, 3, 1, 'n', 'p')
	if !bytes.Equal(got, want) {
		t.Fatalf("Append = %x, want %x", got, want)
	}
	long := Append(mod, "n", string(bytes.Repeat([]byte("x"), 200)))
	if long[8] != 0 || long[9] != 0xca || long[10] != 0x01 { // 202 = 0x4a|0x80, 0x01
		t.Fatalf("size of a 202-byte body = % x, want ca 01", long[9:11])
	}
	if !bytes.Equal(mod, []byte("\x00asm\x01\x00\x00\x00")) {
		t.Fatal("Append changed its input")
	}
}
