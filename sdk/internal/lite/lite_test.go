package lite_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/sdk/internal/lite"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// message is what every lite message implements.
type message interface {
	Unmarshal([]byte) error
	Marshal() ([]byte, error)
}

// pairs are the generated messages and their hand-written codecs: every
// message of host API v1 that a plugin decodes or encodes.
var pairs = []struct {
	pb   func() proto.Message
	lite func() message
}{
	{func() proto.Message { return &pluginv1.DescribeRequest{} }, func() message { return &lite.DescribeRequest{} }},
	{func() proto.Message { return &pluginv1.DescribeResponse{} }, func() message { return &lite.DescribeResponse{} }},
	{func() proto.Message { return &pluginv1.ValidateRequest{} }, func() message { return &lite.ValidateRequest{} }},
	{func() proto.Message { return &pluginv1.ValidateResponse{} }, func() message { return &lite.ValidateResponse{} }},
	{func() proto.Message { return &pluginv1.ConfigureRequest{} }, func() message { return &lite.ConfigureRequest{} }},
	{func() proto.Message { return &pluginv1.ConfigureResponse{} }, func() message { return &lite.Empty{} }},
	{func() proto.Message { return &pluginv1.CloseRequest{} }, func() message { return &lite.Empty{} }},
	{func() proto.Message { return &pluginv1.CloseResponse{} }, func() message { return &lite.Empty{} }},
	{func() proto.Message { return &notifierv1.NotifyRequest{} }, func() message { return &lite.NotifyRequest{} }},
	{func() proto.Message { return &notifierv1.NotifyResponse{} }, func() message { return &lite.Empty{} }},
	{func() proto.Message { return &writerv1.WriteRequest{} }, func() message { return &lite.WriteRequest{} }},
	{func() proto.Message { return &writerv1.WriteResponse{} }, func() message { return &lite.WriteResponse{} }},
	{func() proto.Message { return &issuerv1.IssueRequest{} }, func() message { return &lite.IssueRequest{} }},
	{func() proto.Message { return &issuerv1.IssueResponse{} }, func() message { return &lite.IssueResponse{} }},
	{func() proto.Message { return &hostv1.LogRequest{} }, func() message { return &lite.LogRequest{} }},
	{func() proto.Message { return &hostv1.LogResponse{} }, func() message { return &lite.Empty{} }},
	{func() proto.Message { return &hostv1.HTTPRequest{} }, func() message { return &lite.HTTPRequest{} }},
	{func() proto.Message { return &hostv1.HTTPResponse{} }, func() message { return &lite.HTTPResponse{} }},
	{func() proto.Message { return &hostv1.AddCounter{} }, func() message { return &lite.AddCounter{} }},
	{func() proto.Message { return &hostv1.AddCounterResponse{} }, func() message { return &lite.Empty{} }},
}

func name(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

var deterministic = proto.MarshalOptions{Deterministic: true}

// fill sets every field of m (recursively) to a non-default value drawn
// from r: a field added to a .proto and not to this package makes the
// tests fail.
func fill(r *rand.Rand, m protoreflect.Message) {
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for j := 0; j < 1+r.IntN(3); j++ {
				mp.Set(protoreflect.ValueOfString(randString(r)).MapKey(), protoreflect.ValueOfString(randString(r)))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := 0; j < 1+r.IntN(3); j++ {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					fill(r, e.Message())
					l.Append(e)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			fill(r, m.Mutable(fd).Message())
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func randString(r *rand.Rand) string {
	return []string{"a", "spiffe://example.org/web", "é✓ ünïcode", strings.Repeat("x", 200)}[r.IntN(4)] + fmt.Sprint(r.IntN(1000))
}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(randString(r))
	case protoreflect.BytesKind:
		b := make([]byte, 1+r.IntN(300))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32([]int32{-1, math.MinInt32, 7, math.MaxInt32}[r.IntN(4)])
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64([]int64{-1, math.MinInt64, 1 << 40, math.MaxInt64}[r.IntN(4)])
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32([]uint32{1, math.MaxUint32, 300}[r.IntN(3)])
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{0, 1.5, math.Inf(-1), -2}[r.IntN(4)])
	}
	panic(fmt.Sprintf("fill: kind %v of %s is not handled; extend the test", fd.Kind(), fd.FullName()))
}

// fieldName is how a .proto field name and a Go field name compare:
// lowercase without underscores ("spiffe_id" and SpiffeID, "ttl_seconds"
// and TTLSeconds).
func fieldName(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// sameFields reports the first difference between the generated message
// pm and the lite value lv (a struct), field by field, by name.
func sameFields(path string, pm protoreflect.Message, lv reflect.Value) error {
	fds := pm.Descriptor().Fields()
	if lv.Kind() != reflect.Struct {
		return fmt.Errorf("%s: lite value is a %s", path, lv.Kind())
	}
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		p := path + "." + string(fd.Name())
		f, ok := lv.Type().FieldByNameFunc(func(s string) bool { return fieldName(s) == fieldName(string(fd.Name())) })
		if !ok {
			return fmt.Errorf("%s: the lite message has no field for it", p)
		}
		v := lv.FieldByIndex(f.Index)
		pv := pm.Get(fd)
		switch {
		case fd.IsMap():
			got := map[string]string{}
			for _, k := range v.MapKeys() {
				got[k.String()] = v.MapIndex(k).String()
			}
			want := map[string]string{}
			pv.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				want[k.String()] = v.String()
				return true
			})
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%s: got %v, want %v", p, got, want)
			}
		case fd.IsList():
			l := pv.List()
			if v.Len() != l.Len() {
				return fmt.Errorf("%s: got %d elements, want %d", p, v.Len(), l.Len())
			}
			for j := 0; j < l.Len(); j++ {
				if err := sameValue(fmt.Sprintf("%s[%d]", p, j), fd, l.Get(j), v.Index(j)); err != nil {
					return err
				}
			}
		default:
			if err := sameValue(p, fd, pv, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func sameValue(path string, fd protoreflect.FieldDescriptor, pv protoreflect.Value, v reflect.Value) error {
	var got, want any
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return sameFields(path, pv.Message(), v)
	case protoreflect.BytesKind:
		if !bytes.Equal(v.Bytes(), pv.Bytes()) {
			return fmt.Errorf("%s: got %x, want %x", path, v.Bytes(), pv.Bytes())
		}
		return nil
	case protoreflect.StringKind:
		got, want = v.String(), pv.String()
	case protoreflect.BoolKind:
		got, want = v.Bool(), pv.Bool()
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		got, want = v.Int(), pv.Int()
	case protoreflect.Uint32Kind:
		got, want = v.Uint(), pv.Uint()
	case protoreflect.DoubleKind:
		got, want = math.Float64bits(v.Float()), math.Float64bits(pv.Float())
	default:
		return fmt.Errorf("%s: kind %v is not compared; extend the test", path, fd.Kind())
	}
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", path, got, want)
	}
	return nil
}

// TestRoundTripEveryField fills every field of every message, encodes it
// with the generated code, decodes it by hand, compares every field by
// name, and re-encodes it by hand: the bytes must be the generated
// code's.
func TestRoundTripEveryField(t *testing.T) {
	for _, p := range pairs {
		t.Run(name(p.pb()), func(t *testing.T) {
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 1))
				pm := p.pb()
				fill(r, pm.ProtoReflect())
				b, err := deterministic.Marshal(pm)
				if err != nil {
					t.Fatal(err)
				}
				lm := p.lite()
				if err := lm.Unmarshal(b); err != nil {
					t.Fatalf("seed %d: lite Unmarshal: %v", seed, err)
				}
				if _, empty := lm.(*lite.Empty); !empty {
					if err := sameFields(name(pm), pm.ProtoReflect(), reflect.ValueOf(lm).Elem()); err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
				}
				got, err := lm.Marshal()
				if err != nil {
					t.Fatalf("seed %d: lite Marshal: %v", seed, err)
				}
				if !bytes.Equal(got, b) {
					t.Fatalf("seed %d: lite Marshal:\n got %x\nwant %x", seed, got, b)
				}
			}
		})
	}
}

// TestEmpty: no bytes decode to the zero message, which encodes to no
// bytes.
func TestEmpty(t *testing.T) {
	for _, p := range pairs {
		t.Run(name(p.pb()), func(t *testing.T) {
			for _, in := range [][]byte{nil, {}} {
				lm := p.lite()
				if err := lm.Unmarshal(in); err != nil {
					t.Fatalf("Unmarshal(%v): %v", in, err)
				}
				if !reflect.ValueOf(lm).Elem().IsZero() {
					t.Fatalf("Unmarshal(%v) = %+v, want the zero message", in, lm)
				}
				if b, err := lm.Marshal(); err != nil || len(b) != 0 {
					t.Fatalf("Marshal of the zero message = %x, %v; want no bytes", b, err)
				}
			}
		})
	}
}

// unknownFields has one unknown field of every wire type, groups included.
func unknownFields() []byte {
	var b []byte
	b = protowire.AppendVarint(protowire.AppendTag(b, 100, protowire.VarintType), 1<<63)
	b = protowire.AppendFixed32(protowire.AppendTag(b, 101, protowire.Fixed32Type), 7)
	b = protowire.AppendFixed64(protowire.AppendTag(b, 102, protowire.Fixed64Type), 7)
	b = protowire.AppendString(protowire.AppendTag(b, 103, protowire.BytesType), "\xffnot utf-8 but unknown")
	b = protowire.AppendTag(b, 104, protowire.StartGroupType)
	b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 3)
	b = protowire.AppendTag(b, 104, protowire.EndGroupType)
	return b
}

// TestUnknownFieldsDropped: unknown fields, before, between and after the
// known ones, are accepted and dropped.
func TestUnknownFieldsDropped(t *testing.T) {
	for _, p := range pairs {
		t.Run(name(p.pb()), func(t *testing.T) {
			pm := p.pb()
			fill(rand.New(rand.NewPCG(1, 2)), pm.ProtoReflect())
			want, _ := deterministic.Marshal(pm)
			in := append(append(unknownFields(), want...), unknownFields()...)
			if err := proto.Unmarshal(in, p.pb()); err != nil {
				t.Fatalf("proto.Unmarshal rejects the input: %v", err)
			}
			lm := p.lite()
			if err := lm.Unmarshal(in); err != nil {
				t.Fatalf("lite Unmarshal: %v", err)
			}
			if got, _ := lm.Marshal(); !bytes.Equal(got, want) {
				t.Fatalf("after dropping unknown fields:\n got %x\nwant %x", got, want)
			}
		})
	}
}

// wrongType returns a field num of a wire type other than the field's.
func wrongType(fd protoreflect.FieldDescriptor) []byte {
	b := protowire.AppendTag(nil, fd.Number(), protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	if fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.BytesKind && fd.Kind() != protoreflect.MessageKind {
		b = protowire.AppendTag(nil, fd.Number(), protowire.BytesType)
		b = protowire.AppendString(b, "\xff")
	}
	return b
}

// TestKnownFieldWrongWireType: a known field sent with another wire type
// is what proto.Unmarshal makes of it. That is not an error: the generated
// code keeps it as an unknown field (and the field at its default), so the
// hand codec drops it and leaves the field at its default too.
func TestKnownFieldWrongWireType(t *testing.T) {
	for _, p := range pairs {
		fds := p.pb().ProtoReflect().Descriptor().Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			t.Run(string(fd.FullName()), func(t *testing.T) {
				in := wrongType(fd)
				pm := p.pb()
				perr := proto.Unmarshal(in, pm)
				lm := p.lite()
				lerr := lm.Unmarshal(in)
				if (perr == nil) != (lerr == nil) {
					t.Fatalf("proto.Unmarshal: %v; lite Unmarshal: %v", perr, lerr)
				}
				if pm.ProtoReflect().Has(fd) {
					t.Fatalf("proto.Unmarshal set %s from a wrong wire type", fd.Name())
				}
				if !reflect.ValueOf(lm).Elem().IsZero() {
					t.Fatalf("lite Unmarshal set a field from a wrong wire type: %+v", lm)
				}
			})
		}
	}
}

// TestInvalidUTF8: a string field that is not UTF-8 is an error, in
// either direction, as with the generated code.
func TestInvalidUTF8(t *testing.T) {
	for _, p := range pairs {
		fds := p.pb().ProtoReflect().Descriptor().Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			if fd.Kind() != protoreflect.StringKind {
				continue
			}
			t.Run(string(fd.FullName()), func(t *testing.T) {
				in := protowire.AppendString(protowire.AppendTag(nil, fd.Number(), protowire.BytesType), "ok\xff")
				if err := proto.Unmarshal(in, p.pb()); err == nil {
					t.Fatal("proto.Unmarshal accepts invalid UTF-8; the test's premise is wrong")
				}
				if err := p.lite().Unmarshal(in); err == nil {
					t.Fatal("lite Unmarshal accepts invalid UTF-8")
				}
			})
		}
	}
	// Encoding: a string a plugin returns that is not UTF-8 fails Marshal,
	// as proto.Marshal fails, instead of reaching the host's decoder.
	for _, m := range []message{
		&lite.WriteResponse{Paths: []string{"ok", "\xff"}},
		&lite.DescribeResponse{Name: "\xff"},
		&lite.ValidateResponse{Problems: []lite.FieldError{{Field: "url", Message: "\xfe"}}},
		&lite.AddCounter{Labels: map[string]string{"k": "\xff"}},
	} {
		if b, err := m.Marshal(); err == nil {
			t.Errorf("%T.Marshal with invalid UTF-8 = %x, want an error", m, b)
		}
	}
}

// TestFieldNumbers: field numbers 0 and above 2^29-1 (which
// protowire.ConsumeTag alone accepts up to 2^31-1) are malformed, as for
// proto.Unmarshal; the largest valid one is an unknown field.
func TestFieldNumbers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		num     uint64
		wantErr bool
	}{
		{"zero", 0, true},
		{"largest valid", uint64(protowire.MaxValidNumber), false},
		{"one above", uint64(protowire.MaxValidNumber) + 1, true},
		{"found by FuzzUnmarshal (testdata/fuzz)", 0x6142850a, true},
		{"max int32", 1<<31 - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := protowire.AppendVarint(protowire.AppendVarint(nil, tc.num<<3|uint64(protowire.VarintType)), 48)
			for _, p := range pairs {
				compare(t, p.pb(), p.lite(), in)
				if err := p.lite().Unmarshal(in); (err != nil) != tc.wantErr {
					t.Fatalf("%s: lite Unmarshal = %v, want an error: %v", name(p.pb()), err, tc.wantErr)
				}
			}
		})
	}
}

// TestTruncated: every proper prefix of a full message is accepted or
// rejected exactly as proto.Unmarshal does.
func TestTruncated(t *testing.T) {
	for _, p := range pairs {
		t.Run(name(p.pb()), func(t *testing.T) {
			pm := p.pb()
			fill(rand.New(rand.NewPCG(3, 4)), pm.ProtoReflect())
			b, _ := deterministic.Marshal(pm)
			for n := range len(b) {
				compare(t, p.pb(), p.lite(), b[:n])
			}
		})
	}
}

// compare decodes in with both codecs: both must fail, or both succeed
// with the same fields (unknown fields dropped).
func compare(t *testing.T, pm proto.Message, lm message, in []byte) {
	t.Helper()
	perr := proto.Unmarshal(in, pm)
	lerr := lm.Unmarshal(in)
	if (perr == nil) != (lerr == nil) {
		t.Fatalf("input %x: proto.Unmarshal: %v; lite Unmarshal: %v", in, perr, lerr)
	}
	if perr != nil {
		return
	}
	discardUnknown(pm.ProtoReflect())
	want, err := deterministic.Marshal(pm)
	if err != nil {
		t.Fatalf("input %x: re-encoding with proto: %v", in, err)
	}
	got, err := lm.Marshal()
	if err != nil {
		t.Fatalf("input %x: re-encoding by hand: %v", in, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("input %x: decoded differently:\nlite  %x\nproto %x", in, got, want)
	}
}

func discardUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				discardUnknown(v.List().Get(i).Message())
			}
		case !fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			discardUnknown(v.Message())
		}
		return true
	})
}

// FuzzUnmarshal decodes arbitrary bytes as every message with both the
// generated code and the hand codec: they must agree on whether the input
// is valid and, when it is, on every field.
func FuzzUnmarshal(f *testing.F) {
	for i, p := range pairs {
		pm := p.pb()
		fill(rand.New(rand.NewPCG(uint64(i), 5)), pm.ProtoReflect())
		b, _ := deterministic.Marshal(pm)
		f.Add(b)
	}
	f.Add(unknownFields())
	f.Add([]byte{0x0a, 0x02, 0xc3, 0x28})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, p := range pairs {
			compare(t, p.pb(), p.lite(), in)
		}
	})
}
