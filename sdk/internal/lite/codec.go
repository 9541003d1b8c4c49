package lite

import (
	"errors"
	"math"
	"sort"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// errInvalidUTF8 matches what proto.Unmarshal and proto.Marshal refuse: a
// proto3 string field that is not valid UTF-8.
var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// errFieldNumber is a tag whose field number is above
// protowire.MaxValidNumber, which proto.Unmarshal refuses.
var errFieldNumber = errors.New("invalid field number")

// decoder walks the fields of one message. Its helpers take the field's
// wire type; a known field with another wire type is skipped as an
// unknown field, as proto.Unmarshal does (it keeps it in the message's
// unknown fields, which this package drops).
type decoder struct {
	b   []byte
	err error
}

// next reads the next tag. It returns false at the end of the message or
// on an error.
func (d *decoder) next() (protowire.Number, protowire.Type, bool) {
	if d.err != nil || len(d.b) == 0 {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(d.b)
	if n < 0 {
		d.fail(protowire.ParseError(n))
		return 0, 0, false
	}
	// ConsumeTag accepts numbers up to MaxInt32; proto.Unmarshal refuses
	// those above 2^29-1, the largest a .proto can declare.
	if num > protowire.MaxValidNumber {
		d.fail(errFieldNumber)
		return 0, 0, false
	}
	d.b = d.b[n:]
	return num, typ, true
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

// skip consumes the value of an unknown field (groups included).
func (d *decoder) skip(num protowire.Number, typ protowire.Type) {
	n := protowire.ConsumeFieldValue(num, typ, d.b)
	if n < 0 {
		d.fail(protowire.ParseError(n))
		return
	}
	d.b = d.b[n:]
}

// varint consumes a varint field into v; it reports false (and skips the
// field) for another wire type.
func (d *decoder) varint(num protowire.Number, typ protowire.Type) (uint64, bool) {
	if typ != protowire.VarintType {
		d.skip(num, typ)
		return 0, false
	}
	v, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		d.fail(protowire.ParseError(n))
		return 0, false
	}
	d.b = d.b[n:]
	return v, true
}

func (d *decoder) int64(num protowire.Number, typ protowire.Type, p *int64) {
	if v, ok := d.varint(num, typ); ok {
		*p = int64(v)
	}
}

func (d *decoder) int32(num protowire.Number, typ protowire.Type, p *int32) {
	if v, ok := d.varint(num, typ); ok {
		*p = int32(v)
	}
}

func (d *decoder) uint32(num protowire.Number, typ protowire.Type, p *uint32) {
	if v, ok := d.varint(num, typ); ok {
		*p = uint32(v)
	}
}

func (d *decoder) bool(num protowire.Number, typ protowire.Type, p *bool) {
	if v, ok := d.varint(num, typ); ok {
		*p = v != 0
	}
}

// raw consumes a length-delimited field; it reports false (and skips the
// field) for another wire type. The result aliases the input.
func (d *decoder) raw(num protowire.Number, typ protowire.Type) ([]byte, bool) {
	if typ != protowire.BytesType {
		d.skip(num, typ)
		return nil, false
	}
	v, n := protowire.ConsumeBytes(d.b)
	if n < 0 {
		d.fail(protowire.ParseError(n))
		return nil, false
	}
	d.b = d.b[n:]
	return v, true
}

func (d *decoder) string(num protowire.Number, typ protowire.Type, p *string) {
	if v, ok := d.raw(num, typ); ok {
		if !utf8.Valid(v) {
			d.fail(errInvalidUTF8)
			return
		}
		*p = string(v)
	}
}

func (d *decoder) strings(num protowire.Number, typ protowire.Type, p *[]string) {
	if v, ok := d.raw(num, typ); ok {
		if !utf8.Valid(v) {
			d.fail(errInvalidUTF8)
			return
		}
		*p = append(*p, string(v))
	}
}

// bytes decodes a bytes field into a copy: a present field is never nil,
// as with proto.Unmarshal.
func (d *decoder) bytes(num protowire.Number, typ protowire.Type, p *[]byte) {
	if v, ok := d.raw(num, typ); ok {
		*p = append(make([]byte, 0, len(v)), v...)
	}
}

func (d *decoder) bytesList(num protowire.Number, typ protowire.Type, p *[][]byte) {
	if v, ok := d.raw(num, typ); ok {
		*p = append(*p, append(make([]byte, 0, len(v)), v...))
	}
}

// message decodes an embedded message with f.
func (d *decoder) message(num protowire.Number, typ protowire.Type, f func([]byte) error) {
	if v, ok := d.raw(num, typ); ok {
		if err := f(v); err != nil {
			d.fail(err)
		}
	}
}

// encoder appends fields in field-number order, omitting proto3 defaults,
// as proto.Marshal does.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) varint(num protowire.Number, v uint64) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

func (e *encoder) int64(num protowire.Number, v int64)   { e.varint(num, uint64(v)) }
func (e *encoder) int32(num protowire.Number, v int32)   { e.varint(num, uint64(int64(v))) }
func (e *encoder) uint32(num protowire.Number, v uint32) { e.varint(num, uint64(v)) }

func (e *encoder) bool(num protowire.Number, v bool) {
	if v {
		e.varint(num, 1)
	}
}

func (e *encoder) double(num protowire.Number, v float64) {
	if bits := math.Float64bits(v); bits != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, bits)
	}
}

// str appends a string field even when empty (an element of a repeated
// field).
func (e *encoder) str(num protowire.Number, v string) {
	if !utf8.ValidString(v) {
		if e.err == nil {
			e.err = errInvalidUTF8
		}
		return
	}
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, v)
}

func (e *encoder) string(num protowire.Number, v string) {
	if v != "" {
		e.str(num, v)
	}
}

func (e *encoder) strings(num protowire.Number, vs []string) {
	for _, v := range vs {
		e.str(num, v)
	}
}

func (e *encoder) bytes(num protowire.Number, v []byte) {
	if len(v) > 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, v)
	}
}

func (e *encoder) bytesList(num protowire.Number, vs [][]byte) {
	for _, v := range vs {
		e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, v)
	}
}

// message appends an embedded message, always (an element of a repeated
// field), encoded by f.
func (e *encoder) message(num protowire.Number, f func(*encoder)) {
	sub := encoder{}
	f(&sub)
	if sub.err != nil && e.err == nil {
		e.err = sub.err
	}
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, sub.b)
}

// stringMap appends a map<string, string> field, sorted by key (what
// proto.MarshalOptions{Deterministic: true} does).
func (e *encoder) stringMap(num protowire.Number, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.message(num, func(e *encoder) {
			e.str(1, k)
			e.str(2, m[k])
		})
	}
}

func (d *decoder) double(num protowire.Number, typ protowire.Type, p *float64) {
	if typ != protowire.Fixed64Type {
		d.skip(num, typ)
		return
	}
	v, n := protowire.ConsumeFixed64(d.b)
	if n < 0 {
		d.fail(protowire.ParseError(n))
		return
	}
	d.b = d.b[n:]
	*p = math.Float64frombits(v)
}
