package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
	"github.com/svidagent/svidagent/internal/wire"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Tunables of the checks.
const (
	// callTimeout bounds one well-formed call of the suite.
	callTimeout = 30 * time.Second
	// cutOff is the deadline of the call the deadline check cuts off.
	cutOff = time.Millisecond
	// memoryCalls is the number of calls memory_flat makes after warmUp.
	memoryCalls = 10000
	// warmUp calls come first: a Go guest's heap grows to its collector's
	// target over its first calls (examples/notifier-webhook: 7 to
	// 11.75 MiB within 2,000 Notify calls, then flat over 38,000 more).
	warmUp = 2000
	// maxMemoryGrowth bounds the growth of a WASM instance's linear memory
	// over memoryCalls.
	maxMemoryGrowth = 2 << 20
	// memoryPad is the size of an unknown field memory_flat adds to each
	// request (guests skip unknown fields, ABI.md §4). A guest that never
	// frees its request buffers (§3) then grows by more than memoryPad per
	// call: past maxMemoryGrowth within 512 calls, 20 times sooner than
	// the bound allows.
	memoryPad = 4 << 10
	// memorySample is how often, in calls, memory_flat reads the size of
	// linear memory; it fails as soon as the growth reaches the bound.
	memorySample = 100
)

// Checks lists the names of the checks, in the order they run, for every
// kind and then per kind.
var Checks = struct {
	Common, Writer, Issuer, Notifier []string
}{
	Common: []string{"abi_exports", "negotiation", "describe", "validate_rejects_invalid", "validate_rejects_unknown_key",
		"call_before_configure", "configure_idempotent", "failed_configure_keeps_config", "close_after_failed_configure",
		"deadline", "memory_flat", "malformed_input", "unknown_method"},
	Writer:   []string{"write_reports_paths", "write_idempotent", "write_modes", "write_atomic"},
	Issuer:   []string{"issue_chain_verifies", "issue_spiffe_id", "issue_public_key", "issue_ttl", "issue_backend_down"},
	Notifier: []string{"notify_no_key_material", "notify_errors"},
}

// run runs every check through r.
func (s *suite) run(ctx context.Context, r reporter) {
	blocked := ""
	guard := func(f func() outcome) func() outcome {
		return func() outcome {
			if blocked != "" {
				return outcome{status: StatusSkip, reason: "not run: " + blocked}
			}
			return f()
		}
	}
	if r.check("abi_exports", func() outcome { return s.checkABI() }) == StatusFail {
		blocked = "the module fails the ABI check"
	}
	if r.check("negotiation", guard(func() outcome { return s.checkNegotiation(ctx) })) == StatusFail && blocked == "" {
		blocked = "version negotiation failed"
	}
	r.check("describe", guard(s.checkDescribe))
	r.check("validate_rejects_invalid", guard(func() outcome { return s.checkValidate(ctx) }))
	r.check("validate_rejects_unknown_key", guard(func() outcome { return s.checkUnknownKey(ctx) }))
	r.check("call_before_configure", guard(func() outcome { return s.checkBeforeConfigure(ctx) }))
	r.check("configure_idempotent", guard(func() outcome { return s.checkConfigureTwice(ctx) }))
	r.check("failed_configure_keeps_config", guard(func() outcome { return s.checkFailedReconfigure(ctx) }))
	r.check("close_after_failed_configure", guard(func() outcome { return s.checkCloseAfterFailedConfigure(ctx) }))
	r.check("deadline", guard(func() outcome { return s.checkDeadline(ctx) }))
	r.check("memory_flat", guard(func() outcome { return s.checkMemory(ctx) }))
	r.check("malformed_input", guard(func() outcome { return s.checkMalformed(ctx) }))
	r.check("unknown_method", guard(func() outcome { return s.checkUnknownMethod(ctx) }))
	switch s.t.Kind {
	case hostapi.KindWriter:
		s.runWriter(ctx, r, guard)
	case hostapi.KindIssuer:
		s.runIssuer(ctx, r, guard)
	case hostapi.KindNotifier:
		s.runNotifier(ctx, r, guard)
	}
}

func (s *suite) checkABI() outcome {
	if s.rt != runtimeWASM {
		return skip("a %s plugin has no WASM exports", s.rt)
	}
	exports, err := load.CheckWASMExports(s.t.Path)
	if err != nil {
		return fail("%v", err)
	}
	if exports == nil {
		return fail("the file is not a WebAssembly module, or its sections cannot be read")
	}
	return pass()
}

func (s *suite) checkNegotiation(ctx context.Context) outcome {
	inst, err := s.dial(ctx)
	if err != nil {
		return fail("loading the plugin: %v", err)
	}
	p, err := adapter.Negotiate(ctx, inst.conn, s.settings(s.t.ConfigJSON))
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	s.info = p.Info()
	// The example config is not part of adapter.Info: ask again.
	var desc pluginv1.DescribeResponse
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := inst.conn.Invoke(cctx, adapter.MethodDescribe, &pluginv1.DescribeRequest{HostServices: s.hostServices()}, &desc); err != nil {
		return fail("a second Describe failed: %v", err)
	}
	s.example = desc.GetExampleConfigJson()
	if !s.configGiven && isObject(s.example) {
		s.t.ConfigJSON, s.exampleUsed = s.example, true
	}
	want := adapter.SupportedServices(s.t.Kind)
	if !slices.Contains(s.info.Services, adapter.ServicePlugin) || !slices.ContainsFunc(want, func(w string) bool { return slices.Contains(s.info.Services, w) }) {
		return fail("Describe lists %v; want %s and one of %v", s.info.Services, adapter.ServicePlugin, want)
	}
	return pass()
}

// serviceName is a fully-qualified protobuf service name.
var serviceName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$`)

func (s *suite) checkDescribe() outcome {
	var problems []string
	if s.info.Name == "" {
		problems = append(problems, "name is empty")
	}
	if s.info.Version == "" {
		problems = append(problems, "version is empty")
	}
	if len(s.info.Services) == 0 {
		problems = append(problems, "services is empty")
	}
	for _, svc := range s.info.Services {
		if !serviceName.MatchString(svc) {
			problems = append(problems, fmt.Sprintf("service %q is not fully qualified (want package.Service, e.g. %s)", svc, adapter.ServicePlugin))
		}
	}
	if len(s.example) > 0 && !isObject(s.example) {
		problems = append(problems, fmt.Sprintf("example_config_json %q is not a JSON object", s.example))
	}
	if len(problems) > 0 {
		return fail("Describe is malformed: %s", strings.Join(problems, "; "))
	}
	return pass()
}

// negotiated dials the plugin and negotiates, without configuring it.
func (s *suite) negotiated(ctx context.Context) (*adapter.Plugin, *instance, error) {
	inst, err := s.dial(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the plugin: %w", err)
	}
	p, err := adapter.Negotiate(ctx, inst.conn, s.settings(s.t.ConfigJSON))
	if err != nil {
		return nil, nil, err
	}
	return p, inst, nil
}

func (s *suite) checkValidate(ctx context.Context) outcome {
	p, _, err := s.negotiated(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	if err := p.Validate(ctx, s.t.ConfigJSON); err != nil {
		return fail("Validate rejected %s %s: %v", s.configSource(), s.t.ConfigJSON, err)
	}
	err = p.Validate(ctx, s.t.InvalidConfigJSON)
	if err == nil {
		return fail("Validate accepted the invalid config %s; it must answer a problem", s.t.InvalidConfigJSON)
	}
	fes := hostapi.AsFieldErrors(err)
	if fes == nil {
		return fail("Validate failed instead of answering problems: %v", err)
	}
	for _, fe := range fes {
		if strings.TrimSpace(fe.Message) == "" {
			return fail("Validate answered a problem without a message (field %q)", fe.Field)
		}
	}
	return pass()
}

// isObject reports whether b is a JSON object, as a config block is.
func isObject(b []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil && obj != nil
}

// configSource names where ConfigJSON came from, for failure reasons.
func (s *suite) configSource() string {
	if s.exampleUsed {
		return "the example config from Describe"
	}
	return "the valid config"
}

// opened opens the plugin with ConfigJSON.
func (s *suite) opened(ctx context.Context) (*adapter.Plugin, *instance, error) {
	p, inst, err := s.open(ctx, s.t.ConfigJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the plugin with %s: %w", s.configSource(), err)
	}
	return p, inst, nil
}

// unknownKey is the attribute no plugin knows.
const unknownKey = "svidagent_conformance_unknown_attribute"

// checkUnknownKey adds one unknown attribute to the valid config: ABI.md
// §6 requires Validate to answer it as a problem, so that a typo in a
// config block is reported instead of ignored.
func (s *suite) checkUnknownKey(ctx context.Context) outcome {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(s.t.ConfigJSON, &obj); err != nil || obj == nil {
		return skip("the valid config %s is not a JSON object", s.t.ConfigJSON)
	}
	obj[unknownKey] = json.RawMessage("true")
	withUnknown, err := json.Marshal(obj)
	if err != nil {
		return fail("encoding the config: %v", err)
	}
	p, _, err := s.negotiated(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	err = p.Validate(ctx, withUnknown)
	if err == nil {
		return fail("Validate accepted %s %s with the unknown attribute %q; unknown attributes must be answered as problems", s.configSource(), s.t.ConfigJSON, unknownKey)
	}
	if hostapi.AsFieldErrors(err) == nil {
		return fail("Validate failed instead of answering problems: %v", err)
	}
	return pass()
}

// checkFailedReconfigure configures the plugin, then fails a second
// Configure: ABI.md §6 requires the previous config to stay in effect.
func (s *suite) checkFailedReconfigure(ctx context.Context) outcome {
	p, inst, err := s.opened(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := inst.conn.Invoke(cctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: s.t.InvalidConfigJSON, Instance: "conformance"}, &pluginv1.ConfigureResponse{}); err == nil {
		return fail("Configure accepted the invalid config %s", s.t.InvalidConfigJSON)
	}
	if err := s.kindCall(cctx, p); err != nil {
		return fail("after a failed re-Configure, the previous config must stay in effect, but %v", err)
	}
	return pass()
}

// checkBeforeConfigure makes a well-formed call of the kind's service
// before any Configure: ABI.md §6 requires FAILED_PRECONDITION.
func (s *suite) checkBeforeConfigure(ctx context.Context) outcome {
	p, inst, err := s.negotiated(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	method, req, resp, err := s.kindRequest()
	if err != nil {
		return fail("%v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err = inst.conn.Invoke(cctx, method, req, resp)
	if code := status.Code(err); code != codes.FailedPrecondition {
		return fail("%s before Configure answered %s (%v); want FAILED_PRECONDITION", short(method), code, err)
	}
	return pass()
}

// kindRequest returns a well-formed call of the kind's service, as the
// host encodes it.
func (s *suite) kindRequest() (method string, req, resp proto.Message, err error) {
	switch s.t.Kind {
	case hostapi.KindNotifier:
		sv, err := s.creds.svid(3)
		if err != nil {
			return "", nil, nil, err
		}
		return adapter.MethodNotify, wire.RotationEventToProto(s.creds.event(sv, []string{"/run/svidagent/svid.pem"})), &notifierv1.NotifyResponse{}, nil
	case hostapi.KindWriter:
		set, err := s.creds.set(4)
		if err != nil {
			return "", nil, nil, err
		}
		wr, err := wire.CredentialSetToProto(set)
		if err != nil {
			return "", nil, nil, err
		}
		return adapter.MethodWrite, wr, &writerv1.WriteResponse{}, nil
	default:
		ir, _, err := s.issueRequest()
		if err != nil {
			return "", nil, nil, err
		}
		return adapter.MethodIssue, wire.IssueRequestToProto(ir), &issuerv1.IssueResponse{}, nil
	}
}

func (s *suite) checkConfigureTwice(ctx context.Context) outcome {
	p, inst, err := s.opened(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := inst.conn.Invoke(cctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: s.t.ConfigJSON, Instance: "conformance"}, &pluginv1.ConfigureResponse{}); err != nil {
		return fail("a second Configure with the same config failed: %v", err)
	}
	if err := s.kindCall(cctx, p); err != nil {
		return fail("after configuring twice, %v", err)
	}
	return pass()
}

func (s *suite) checkCloseAfterFailedConfigure(ctx context.Context) outcome {
	p, inst, err := s.negotiated(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer inst.conn.Close()
	_ = p // closed by hand below, to see the plugin's own answer
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := inst.conn.Invoke(cctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: s.t.InvalidConfigJSON, Instance: "conformance"}, &pluginv1.ConfigureResponse{}); err == nil {
		return fail("Configure accepted the invalid config %s", s.t.InvalidConfigJSON)
	}
	if err := inst.conn.Invoke(cctx, adapter.MethodClose, &pluginv1.CloseRequest{}, &pluginv1.CloseResponse{}); err != nil {
		return fail("Close after a failed Configure failed: %v", err)
	}
	return pass()
}

func (s *suite) checkDeadline(ctx context.Context) outcome {
	p, _, err := s.opened(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	short, cancel := context.WithTimeout(ctx, cutOff)
	_ = s.kindCall(short, p) // may finish in time or be cut off: either is fine
	cancel()
	// The next call may run in a fresh instance (the host discards one
	// whose call was cut off) and pay its start. On a loaded machine that
	// can overrun the kind's call ceiling once (CI saw it for a Go
	// notifier, 2 s); a plugin that cut-offs break fails every call, so a
	// second try keeps the check's meaning.
	var errs []error
	for range 2 {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := s.kindCall(cctx, p)
		cancel()
		if err == nil {
			return pass()
		}
		errs = append(errs, err)
		if status.Code(err) != codes.DeadlineExceeded {
			break
		}
	}
	return fail("after a call cut off at %s, the next call with a %s deadline failed: %v", cutOff, callTimeout, errors.Join(errs...))
}

func (s *suite) checkMemory(ctx context.Context) outcome {
	if s.rt != runtimeWASM {
		return skip("memory is measured for WASM plugins; this is a %s plugin", s.rt)
	}
	p, inst, err := s.opened(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	method, req, resp := s.cheapCall()
	call := func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := inst.conn.Invoke(cctx, method, req, resp); err != nil {
			return fmt.Errorf("call %d (%s) failed: %v", i, method, err)
		}
		return nil
	}
	for i := range warmUp {
		if err := call(i); err != nil {
			return fail("warming up: %v", err)
		}
	}
	before, ok := inst.mem.MemoryBytes()
	if !ok {
		return fail("the instance was discarded while warming up")
	}
	for i := 1; i <= memoryCalls; i++ {
		if err := call(warmUp + i); err != nil {
			return fail("%v", err)
		}
		if i%memorySample != 0 && i != memoryCalls {
			continue
		}
		after, ok := inst.mem.MemoryBytes()
		if !ok {
			return fail("the instance was discarded during %d calls", i)
		}
		if growth := int64(after) - int64(before); growth >= maxMemoryGrowth {
			return fail("linear memory grew by %.1f MiB (%.1f to %.1f MiB) over %d %s calls with %d KiB requests; the bound is %d MiB over %d calls: the plugin leaks per call",
				float64(growth)/(1<<20), float64(before)/(1<<20), float64(after)/(1<<20), i, short(method), memoryPad>>10, maxMemoryGrowth>>20, memoryCalls)
		}
	}
	return pass()
}

// cheapCall is the call memory_flat repeats: Notify for a notifier (what
// the agent calls most), Validate for the others (a write or an issue per
// call would measure the disk or the backend).
//
// The request carries memoryPad bytes of an unknown field.
func (s *suite) cheapCall() (string, proto.Message, proto.Message) {
	if s.t.Kind == hostapi.KindNotifier {
		sv, _ := s.creds.svid(2)
		return adapter.MethodNotify, padded(wire.RotationEventToProto(s.creds.event(sv, []string{"/run/svidagent/svid.pem"}))), &notifierv1.NotifyResponse{}
	}
	return adapter.MethodValidate, padded(&pluginv1.ValidateRequest{ConfigJson: s.t.ConfigJSON}), &pluginv1.ValidateResponse{}
}

// padField is the field number of the padding: far above any field v1
// will define.
const padField = 536870000

// padded returns m with a length-delimited unknown field of memoryPad
// bytes appended.
func padded(m proto.Message) proto.Message {
	b := protowire.AppendTag(nil, padField, protowire.BytesType)
	b = protowire.AppendBytes(b, make([]byte, memoryPad))
	m.ProtoReflect().SetUnknown(append(m.ProtoReflect().GetUnknown(), b...))
	return m
}

func short(method string) string { return method[strings.LastIndexByte(method, '/')+1:] }

// garbage returns a message that encodes to bytes that are not valid
// protobuf: a length-delimited field claiming 4 GiB, then random bytes.
func garbage(seed uint64) proto.Message {
	m := &pluginv1.CloseRequest{}
	b := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}
	r := rand.New(rand.NewPCG(seed, seed))
	for range 64 {
		b = append(b, byte(r.IntN(256)))
	}
	m.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	return m
}

func (s *suite) kindMethod() (string, proto.Message) {
	switch s.t.Kind {
	case hostapi.KindIssuer:
		return adapter.MethodIssue, &issuerv1.IssueResponse{}
	case hostapi.KindWriter:
		return adapter.MethodWrite, &writerv1.WriteResponse{}
	default:
		return adapter.MethodNotify, &notifierv1.NotifyResponse{}
	}
}

func (s *suite) checkMalformed(ctx context.Context) outcome {
	p, inst, err := s.opened(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	kind, kresp := s.kindMethod()
	wrongType := &pluginv1.DescribeResponse{Name: "not a request", Version: "\xff", Services: []string{"x"}, Capabilities: []string{"y"}}
	sends := []struct {
		what, method string
		req, resp    proto.Message
		mustFail     bool
	}{
		{"random bytes to " + short(kind), kind, garbage(1), kresp, true},
		{"random bytes to Validate", adapter.MethodValidate, garbage(2), &pluginv1.ValidateResponse{}, true},
		{"a message of the wrong type to " + short(kind), kind, wrongType, kresp, false},
	}
	for _, sd := range sends {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := inst.conn.Invoke(cctx, sd.method, sd.req, sd.resp)
		cancel()
		if sd.mustFail && err == nil {
			return fail("%s was answered OK; want INVALID_ARGUMENT", sd.what)
		}
		if err != nil && inst.mem != nil && strings.Contains(status.Convert(err).Message(), "instance was discarded") {
			return fail("%s crashed the plugin: %v", sd.what, err)
		}
	}
	// A known field under another wire type is skipped like an unknown
	// one (ABI.md §4): field 1 as fixed32, after a well-formed request.
	method, req, resp, err := s.kindRequest()
	if err != nil {
		return fail("%v", err)
	}
	wrongWire := protowire.AppendFixed32(protowire.AppendTag(nil, 1, protowire.Fixed32Type), 7)
	req.ProtoReflect().SetUnknown(append(req.ProtoReflect().GetUnknown(), wrongWire...))
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := inst.conn.Invoke(cctx, method, req, resp); err != nil {
		return fail("%s with field 1 repeated as fixed32 failed: %v; a known field under another wire type must be skipped like an unknown field", short(method), err)
	}
	if err := s.kindCall(cctx, p); err != nil {
		return fail("after malformed input, a well-formed call failed: %v", err)
	}
	return pass()
}

// kindCall makes one well-formed call of the kind's service.
func (s *suite) kindCall(ctx context.Context, p *adapter.Plugin) error {
	switch s.t.Kind {
	case hostapi.KindNotifier:
		sv, err := s.creds.svid(3)
		if err != nil {
			return err
		}
		if err := p.Notifier().Notify(ctx, s.creds.event(sv, []string{"/run/svidagent/svid.pem"})); err != nil {
			return fmt.Errorf("calling Notify: %w", err)
		}
	case hostapi.KindWriter:
		set, err := s.creds.set(4)
		if err != nil {
			return err
		}
		if _, err := p.Writer().Write(ctx, set); err != nil {
			return fmt.Errorf("calling Write: %w", err)
		}
	default:
		req, _, err := s.issueRequest()
		if err != nil {
			return err
		}
		if _, err := p.Issuer().Issue(ctx, req); err != nil {
			return fmt.Errorf("calling Issue: %w", err)
		}
	}
	return nil
}

// checkUnknownMethod calls methods the plugin cannot know: ABI.md §4
// requires UNIMPLEMENTED, and the plugin keeps working.
func (s *suite) checkUnknownMethod(ctx context.Context) outcome {
	p, inst, err := s.opened(ctx)
	if err != nil {
		return fail("%v", err)
	}
	defer p.Close()
	for _, m := range []string{"/" + abi.Plugin_ServiceName + "/NoSuchMethod", "/svidagent.plugin.conformance.v9.Nothing/Call"} {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := inst.conn.Invoke(cctx, m, &pluginv1.DescribeRequest{}, &pluginv1.DescribeResponse{})
		cancel()
		if code := status.Code(err); code != codes.Unimplemented {
			return fail("the unknown method %s answered %s (%v); want UNIMPLEMENTED", m[1:], code, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := s.kindCall(cctx, p); err != nil {
		return fail("after an unknown method, a well-formed call failed: %v", err)
	}
	return pass()
}
