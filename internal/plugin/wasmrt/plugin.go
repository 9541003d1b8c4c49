package wasmrt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// maxModuleBytes bounds the .wasm file read into memory.
const maxModuleBytes = 256 << 20

// Plugin is one WASM plugin: a compiled module (shared with the other
// plugins of the same module, see engine) and at most one live instance
// of it. Calls are serialised by a mutex: one instance, never
// entered concurrently (a pool would multiply the guest's memory, ~8 MiB
// for a Go guest, for calls the core already runs one at a time per
// plugin). An instance that fails is discarded and the next call gets a
// fresh one, to which Describe and Configure are replayed first.
//
// Plugin implements adapter.Conn.
type Plugin struct {
	cfg      resolved
	log      *slog.Logger // runtime messages: component=wasmrt
	sha256   string
	eng      *engine // shared with the other plugins of the same cache dir
	mod      *module // shared with the other plugins of the same sha256
	compiled wazero.CompiledModule
	modCfg   wazero.ModuleConfig
	memLimit uint64 // bytes, for each instance's limitedMemory
	svc      *services.Services
	out      *rootFS // a writer's /out, or nil

	mu        sync.Mutex
	closed    bool
	inst      *instance
	starting  *starting // the instance being started, while inst is nil
	describe  []byte    // request payload of the last successful Describe
	configure []byte    // request payload of the last successful Configure
}

// starting is an instance being started by a goroutine (Plugin.start):
// instantiated, _initialize run and Describe and Configure replayed, under
// the start deadline and not under any call's. The goroutine touches only
// this struct; whoever holds Plugin.mu after done is closed installs inst
// or reports err. Close cancels it and waits for done.
type starting struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when inst or err is set
	inst   *instance
	err    error
}

var _ adapter.Conn = (*Plugin)(nil)

// HashFile returns the lowercase hex sha256 of the file at path, as the
// sha256 setting of a plugin block wants it.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing plugin: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing plugin %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func readModule(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	// Sized from the file (os.ReadFile's loop), not grown from 512 bytes
	// by doubling: the module is read at every Open.
	size := 512
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 && fi.Size() <= maxModuleBytes {
		size = int(fi.Size()) + 1 // +1: the read that sees EOF needs room
	}
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > maxModuleBytes {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", err
		}
	}
	if len(b) > maxModuleBytes {
		return nil, "", fmt.Errorf("%s is larger than %d MiB", path, maxModuleBytes>>20)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// Open reads, verifies and compiles the module at cfg.Path and checks its
// exports (hostapi/ABI.md §2) before any guest code runs. The first
// instance is created lazily, by the first Invoke.
//
// The file is read once; the sha256 is checked on those bytes and the same
// bytes are compiled, so the file cannot change between check and use.
func Open(ctx context.Context, cfg Config) (*Plugin, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	code, sum, err := readModule(r.Path)
	if err != nil {
		return nil, fmt.Errorf("loading plugin %q: %w", r.Name, err)
	}
	log := r.Logger.With("component", "wasmrt", "plugin", r.Name)
	switch {
	case r.InsecureSkipChecksum:
		log.Warn("plugin checksum not verified: insecure_skip_checksum is set; pin it with sha256 outside development",
			"path", r.Path, "sha256", sum)
	case r.SHA256 == "":
		return nil, fmt.Errorf("plugin %q: sha256 is required; the file has %s (run `svidagent plugin hash FILE` and set sha256)", r.Name, sum)
	case !strings.EqualFold(r.SHA256, sum):
		return nil, PinMismatch(r.Name, r.Path, r.SHA256, sum)
	}
	if funcs, mems, ok := rawExports(code); ok {
		if err := checkNames(funcs, mems); err != nil {
			return nil, fmt.Errorf("plugin %q: %w", r.Name, err)
		}
	}
	p, err := compile(ctx, r, code, sum)
	if err != nil {
		return nil, err
	}
	p.log = log
	if err := checkExports(p.compiled); err != nil {
		p.svc.Close(context.Background())
		p.closeRuntime()
		return nil, fmt.Errorf("plugin %q: %w", r.Name, err)
	}
	return p, nil
}

// compile takes the engine of r.CacheDir and the module compiled from code
// in it (compiling it if no other plugin holds it), and sets up the
// plugin's grants and module config.
func compile(ctx context.Context, r resolved, code []byte, sum string) (*Plugin, error) {
	p := &Plugin{cfg: r, sha256: sum, memLimit: uint64(r.memPages) * pageSize}
	logger := services.NewLogger(r.Logger, r.Name, r.Limits.LogLinesPerSecond)
	p.svc = &services.Services{Logger: logger}
	if len(r.AllowHosts) > 0 {
		web, err := services.NewHTTP(services.HTTPConfig{AllowHosts: r.AllowHosts, MaxBodyBytes: int64(r.maxReply), MaxTimeout: r.callTimeout})
		if err != nil {
			return nil, fmt.Errorf("plugin %q: %w", r.Name, err)
		}
		p.svc.HTTP = web
	}
	if r.Metrics != nil {
		p.svc.Metrics = services.NewMetrics(r.Metrics, r.Name)
	}

	fail := func(err error) (*Plugin, error) {
		p.svc.Close(context.Background())
		p.closeRuntime()
		return nil, err
	}
	eng, err := acquireEngine(ctx, r.CacheDir, r.Engine)
	if err != nil {
		return fail(fmt.Errorf("plugin %q: %w", r.Name, err))
	}
	p.eng = eng
	mod, err := eng.compile(ctx, sum, code)
	if err != nil {
		return fail(fmt.Errorf("plugin %q: compiling %s: %w", r.Name, r.Path, err))
	}
	p.mod, p.compiled = mod, mod.compiled
	if m, ok := p.compiled.ExportedMemories()["memory"]; ok && m.Min() > r.memPages {
		return fail(fmt.Errorf("plugin %q: the module needs at least %d KiB of memory, more than its limit of %d KiB", r.Name, uint64(m.Min())*pageSize>>10, uint64(r.memPages)*pageSize>>10))
	}

	mc := wazero.NewModuleConfig().
		WithName("").         // anonymous: fresh instances never collide
		WithStartFunctions(). // a reactor: _initialize is called explicitly
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	env := r.Env
	if _, ok := env["GOMEMLIMIT"]; !ok {
		env = map[string]string{"GOMEMLIMIT": strconv.FormatUint(uint64(r.memPages)*pageSize*3/4, 10)}
		for k, v := range r.Env {
			env[k] = v
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mc = mc.WithEnv(k, env[k])
	}
	if r.WriteDir != "" {
		if err := os.MkdirAll(r.WriteDir, guestDirMode); err != nil {
			return fail(fmt.Errorf("plugin %q: creating write_dir: %w", r.Name, err))
		}
		out, err := openRootFS(r.WriteDir)
		if err != nil {
			return fail(fmt.Errorf("plugin %q: opening write_dir: %w", r.Name, err))
		}
		p.out = out
		mc = mc.WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(out, GuestOutDir))
	}
	p.modCfg = mc
	return p, nil
}

// closeRuntime gives back the plugin's compiled module and engine.
func (p *Plugin) closeRuntime() {
	if p.out != nil {
		p.out.close()
		p.out = nil
	}
	if p.mod != nil {
		p.eng.releaseModule(p.sha256, p.mod)
		p.mod, p.compiled = nil, nil
	}
	if p.eng != nil {
		p.eng.release()
		p.eng = nil
	}
}

// Invoke calls method (abi.Notifier_Notify_FullMethodName)
// with req and fills resp; see adapter.Conn. The call's deadline is the
// earlier of ctx's and the plugin's call timeout. When the plugin has no
// instance (the first call, or after one was discarded), Invoke first
// waits, bounded by ctx, for one to be started; the start has its own
// deadline (Limits.StartTimeout). A start that failed is reported to a
// call that started it or waited for it; a call that finds one that had
// already failed when it came starts another and waits for that one, so
// that a stale error is never reported. Errors are gRPC status errors:
// the guest's own status, or, when the runtime failed the call,
// DEADLINE_EXCEEDED, CANCELED, RESOURCE_EXHAUSTED or INTERNAL with a
// message saying what happened and that the instance was discarded.
func (p *Plugin) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	// Describe and Configure are kept, encoded, for replay to a fresh
	// instance; every other request is encoded straight into the guest's
	// memory (callOn).
	var payload []byte
	replayed := method == adapter.MethodDescribe || method == adapter.MethodConfigure
	if replayed {
		var err error
		if payload, err = proto.Marshal(req); err != nil {
			return status.Errorf(codes.Internal, "plugin %q: call %s: encoding the request: %v", p.cfg.Name, short(method), err)
		}
		req = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return status.Errorf(status.FromContextError(err).Code(), "plugin %q: call %s: %v", p.cfg.Name, short(method), err)
	}
	if p.closed {
		return status.Errorf(codes.FailedPrecondition, "plugin %q: call %s: the plugin is closed", p.cfg.Name, short(method))
	}
	var waited *starting // the start this call started or waited for
	for p.inst == nil {
		if p.starting == nil {
			p.startLocked()
			waited = p.starting
		}
		st := p.starting
		select {
		case <-st.done:
		default:
			// Wait without the lock, so that the wait is bounded by ctx
			// (and Close is not held up).
			p.mu.Unlock()
			var werr error
			select {
			case <-st.done:
			case <-ctx.Done():
				werr = ctx.Err()
			}
			p.mu.Lock()
			waited = st
			if p.closed {
				return status.Errorf(codes.FailedPrecondition, "plugin %q: call %s: the plugin is closed", p.cfg.Name, short(method))
			}
			if werr != nil {
				return status.Errorf(status.FromContextError(werr).Code(), "plugin %q: call %s: %v while a fresh instance was starting (it keeps starting, under its start deadline of %s)", p.cfg.Name, short(method), werr, p.cfg.startTimeout)
			}
			continue // another call may have taken the instance meanwhile
		}
		p.starting = nil
		if st.err != nil {
			if st != waited {
				// It failed before this call came (a background start
				// after a discard, or one whose caller gave up): the
				// error may be long stale, so try afresh, once, and
				// report that start's outcome.
				p.startLocked()
				waited = p.starting
				continue
			}
			return st.err
		}
		p.inst = st.inst
	}
	err := p.callOn(ctx, p.inst, p.cfg.callTimeout, method, payload, req, resp)
	if p.inst.dead {
		p.inst = nil
		p.startLocked() // the replacement, started before the next call needs it
	}
	if err != nil {
		return err
	}
	switch method {
	case adapter.MethodDescribe:
		p.describe = payload
	case adapter.MethodConfigure:
		p.configure = payload
	}
	return nil
}

// startLocked starts a fresh instance in the background: instantiating it,
// running _initialize and replaying the last successful Describe and
// Configure, all under the plugin's start deadline (Limits.StartTimeout)
// and not under a call's, so that a guest whose startup takes longer than
// its call timeout still recovers from a discarded instance. Only one
// instance (or start) exists at a time.
func (p *Plugin) startLocked() {
	if p.describe != nil && p.cfg.OnRestart != nil { // replacing a discarded instance
		p.cfg.OnRestart()
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.startTimeout)
	st := &starting{cancel: cancel, done: make(chan struct{})}
	p.starting = st
	describe, configure := p.describe, p.configure
	go func() {
		defer close(st.done)
		defer cancel()
		st.inst, st.err = p.start(ctx, describe, configure)
	}()
}

// start creates a fresh instance and replays describe and configure (when
// not nil) to it, under ctx, the start deadline. It touches no Plugin
// state under mu.
func (p *Plugin) start(ctx context.Context, describe, configure []byte) (*instance, error) {
	inst, err := p.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range []struct {
		method  string
		payload []byte
	}{{adapter.MethodDescribe, describe}, {adapter.MethodConfigure, configure}} {
		if r.payload == nil {
			continue
		}
		if err := p.callOn(ctx, inst, p.cfg.startTimeout, r.method, r.payload, nil, nil); err != nil {
			inst.close()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, p.startDeadline()
			}
			return nil, status.Errorf(status.Code(err), "plugin %q: replaying %s to a fresh instance: %s", p.cfg.Name, short(r.method), status.Convert(err).Message())
		}
	}
	return inst, nil
}

// startDeadline is the error of a start that outlived its deadline.
func (p *Plugin) startDeadline() error {
	return status.Errorf(codes.DeadlineExceeded, "plugin %q: starting an instance: start deadline %s exceeded (instantiation, _initialize and the replay of Describe and Configure); the instance was discarded", p.cfg.Name, p.cfg.startTimeout)
}

// short returns a full method name's last element: "Notify".
func short(method string) string {
	return method[strings.LastIndexByte(method, '/')+1:]
}

// callOn runs one request on inst, under limit and ctx's deadline:
// payload, or req encoded straight into the guest's memory when req is not
// nil. It decodes the reply into resp (if not nil) straight from the
// guest's memory, before handing the reply back with svidagent_free;
// proto.Unmarshal copies what it keeps. On any runtime failure it closes
// inst (inst.dead), which its owner then forgets. The caller holds
// Plugin.mu or owns inst alone (a start).
func (p *Plugin) callOn(ctx context.Context, inst *instance, limit time.Duration, method string, payload []byte, req, resp proto.Message) error {
	deadline := limit
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < deadline {
		deadline = time.Until(dl).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	ctx = context.WithValue(ctx, instanceKey{}, inst)
	inst.begin(ctx)
	defer inst.end()
	fail := func(code codes.Code, format string, args ...any) error {
		inst.close()
		return status.Errorf(code, "plugin %q: call %s: %s; the instance was discarded", p.cfg.Name, short(method), fmt.Sprintf(format, args...))
	}

	name := strings.TrimPrefix(method, "/")
	size := len(payload)
	if req != nil {
		size = proto.Size(req)
	}
	n := 4 + len(name) + size
	res, err := inst.alloc.Call(ctx, uint64(n))
	if err != nil {
		return p.failure(ctx, inst, deadline, fail, err)
	}
	ptr := uint32(res[0])
	if ptr == 0 {
		return fail(codes.ResourceExhausted, "svidagent_alloc(%d) returned 0", n)
	}
	buf, ok := inst.mem.Read(ptr, uint32(n))
	if !ok {
		return fail(codes.Internal, "svidagent_alloc(%d) returned %#x, out of bounds", n, ptr)
	}
	binary.LittleEndian.PutUint32(buf, uint32(len(name)))
	copy(buf[4:], name)
	if req == nil {
		copy(buf[4+len(name):], payload)
	} else if err := marshalInto(buf[4+len(name):], req); err != nil {
		if _, ferr := inst.free.Call(ctx, uint64(ptr), uint64(n)); ferr != nil {
			return p.failure(ctx, inst, deadline, fail, ferr)
		}
		return status.Errorf(codes.Internal, "plugin %q: call %s: encoding the request: %v", p.cfg.Name, short(method), err)
	}
	res, err = inst.call.Call(ctx, uint64(ptr), uint64(n))
	if err != nil {
		return p.failure(ctx, inst, deadline, fail, err)
	}
	rptr, rlen := uint32(res[0]>>32), uint32(res[0])
	if res[0] == 0 {
		return fail(codes.Internal, "svidagent_call returned 0 (a guest error)")
	}
	if int64(rlen) > int64(p.cfg.maxReply) {
		if _, err := inst.free.Call(ctx, uint64(rptr), uint64(rlen)); err != nil {
			return p.failure(ctx, inst, deadline, fail, err)
		}
		return status.Errorf(codes.ResourceExhausted, "plugin %q: call %s: reply of %d bytes exceeds the limit of %d bytes", p.cfg.Name, short(method), rlen, p.cfg.maxReply)
	}
	view, ok := inst.mem.Read(rptr, rlen)
	if !ok {
		return fail(codes.Internal, "reply at %#x, %d bytes, is outside the guest's memory", rptr, rlen)
	}
	code, msg, out, err := abi.DecodeResponse(view)
	if err != nil {
		return fail(codes.Internal, "%v", err)
	}
	var decodeErr error
	if code == 0 && resp != nil {
		decodeErr = proto.Unmarshal(out, resp)
	}
	if _, err := inst.free.Call(ctx, uint64(rptr), uint64(rlen)); err != nil {
		return p.failure(ctx, inst, deadline, fail, err)
	}
	if code != 0 {
		if msg == "" {
			msg = fmt.Sprintf("plugin %q: call %s failed with no message", p.cfg.Name, short(method))
		}
		return status.Error(codes.Code(code), msg)
	}
	if decodeErr != nil {
		return status.Errorf(codes.Internal, "plugin %q: call %s: decoding the response: %v", p.cfg.Name, short(method), decodeErr)
	}
	return nil
}

// marshalInto encodes m into b, which is exactly proto.Size(m) bytes
// (the size proto.Marshal would have computed first, too).
func marshalInto(b []byte, m proto.Message) error {
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b[:0:len(b)], m)
	if err != nil {
		return err
	}
	if len(out) != len(b) {
		return fmt.Errorf("encoded %d bytes, sized %d", len(out), len(b))
	}
	return nil
}

// failure turns an error from an export call into the call's error, and
// discards the instance.
func (p *Plugin) failure(ctx context.Context, inst *instance, deadline time.Duration, fail func(codes.Code, string, ...any) error, err error) error {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	switch {
	case isExit && exit.ExitCode() == sys.ExitCodeDeadlineExceeded,
		errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fail(codes.DeadlineExceeded, "deadline %s exceeded", deadline)
	case isExit && exit.ExitCode() == sys.ExitCodeContextCanceled, errors.Is(ctx.Err(), context.Canceled):
		return fail(codes.Canceled, "canceled")
	}
	limit := uint64(p.cfg.memPages) * pageSize
	stderr := inst.fatal()
	if !isExit && strings.Contains(err.Error(), "stack overflow") || strings.Contains(stderr, "stack overflow") {
		// wazero grew the call stack (outside linear memory) to its
		// ceiling, about 84 MB, before it gave up: return that now rather
		// than at the next collection, so a guest that overflows on every
		// call cannot hold the agent's memory up.
		defer debug.FreeOSMemory()
		return fail(codes.ResourceExhausted, "stack overflow: the guest recursed past the call stack's ceiling")
	}
	// A guest near its limit when it trapped ran out of memory; the slack
	// is 4 MiB, or a quarter of a smaller limit.
	if strings.Contains(stderr, "out of memory") || uint64(inst.mem.Size())+min(4<<20, limit/4) > limit {
		return fail(codes.ResourceExhausted, "out of memory (limit %d MiB)", limit>>20)
	}
	if isExit {
		if stderr != "" {
			return fail(codes.Internal, "exited with code %d: %s", exit.ExitCode(), stderr)
		}
		return fail(codes.Internal, "exited with code %d", exit.ExitCode())
	}
	if stderr != "" {
		return fail(codes.Internal, "trapped: %v (guest stderr: %s)", firstLine(err.Error()), stderr)
	}
	return fail(codes.Internal, "trapped: %v", firstLine(err.Error()))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Close closes the instance, the compiled module, the runtime and the
// compilation cache. It waits for a call in progress (bounded by that
// call's deadline), stops an instance being started and waits for that
// (promptly: its context is canceled), and is idempotent.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if st := p.starting; st != nil {
		p.starting = nil
		st.cancel()
		<-st.done
		if st.inst != nil {
			st.inst.close()
		}
	}
	if p.inst != nil {
		p.inst.close()
		p.inst = nil
	}
	p.svc.Close(context.Background())
	p.closeRuntime()
	return nil
}

// SHA256 returns the lowercase hex sha256 of the module's bytes.
func (p *Plugin) SHA256() string { return p.sha256 }

// HostServices returns the fully-qualified names of the host services the
// plugin was granted, for DescribeRequest.host_services.
func (p *Plugin) HostServices() []string { return p.svc.Names() }

func statusError(code codes.Code, msg string) error { return status.Error(code, msg) }

// PinMismatch is the error for the plugin block name whose file at path
// hashes to sum where the block pins pin: what it says and what to do.
func PinMismatch(name, path, pin, sum string) error {
	return fmt.Errorf("plugin %q (%s): sha256 mismatch: config pins %s, file has %s; if you trust this file, run `svidagent plugin hash %s` and update sha256 in the plugin block",
		name, path, strings.ToLower(pin), sum, path)
}
