package wasmrt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"google.golang.org/grpc/codes"
)

// maxLineBytes bounds one line of guest stdout or stderr; longer lines are
// split.
const maxLineBytes = 4096

// instance is one live module instance and the state its host functions
// need. It is used by one call at a time (Plugin.mu).
type instance struct {
	svc               *services.Services // the plugin's grants
	mod               api.Module
	mem               api.Memory
	linear            experimental.LinearMemory // mem's backing, freed by close
	alloc, free, call api.Function

	// Set for the duration of a call (begin/end), read by host functions
	// and by the nanosleep hook, which may run on the call's goroutine only.
	mu   sync.Mutex
	done <-chan struct{}

	pending    []byte // the response envelope `take` hands over
	hasPending bool

	stdout, stderr *lineWriter

	dead bool // closed; under the owner's lock (Plugin.mu) or by a start
}

type instanceKey struct{}

// begin makes ctx the current call's context.
func (i *instance) begin(ctx context.Context) {
	i.mu.Lock()
	i.done = ctx.Done()
	i.mu.Unlock()
	i.stderr.resetFatal()
}

func (i *instance) end() {
	i.mu.Lock()
	i.done = nil
	i.mu.Unlock()
	i.pending, i.hasPending = nil, false
}

// sleep is the guest's nanosleep: it returns early when the current call's
// context is done, so that a guest blocked in poll_oneoff cannot outlive
// its deadline (WithCloseOnContextDone does not interrupt host calls).
func (i *instance) sleep(ns int64) {
	i.mu.Lock()
	done := i.done
	i.mu.Unlock()
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// fatal returns the first "panic:" or "fatal error:" line the guest wrote
// to stderr during the current call.
func (i *instance) fatal() string { return i.stderr.fatalLine() }

// close closes the instance; it is idempotent.
func (i *instance) close() {
	if i.dead {
		return
	}
	i.dead = true
	_ = i.mod.Close(context.Background())
	// The module may have been closed already, by a deadline that fired
	// as a call returned, with its memory left for a later call to free
	// (wazero's closeModuleOnCanceledOrTimeout): free it here. A second
	// Free does nothing.
	if i.linear != nil {
		i.linear.Free()
	}
	i.stdout.flush()
	i.stderr.flush()
}

// instantiate creates a fresh instance and runs _initialize, under ctx
// (the start deadline).
func (p *Plugin) instantiate(ctx context.Context) (*instance, error) {
	inst := &instance{
		svc:    p.svc,
		stdout: &lineWriter{logger: p.svc.Logger, level: slog.LevelInfo, stream: "stdout"},
		stderr: &lineWriter{logger: p.svc.Logger, level: slog.LevelWarn, stream: "stderr"},
	}
	inst.begin(ctx)
	defer inst.end()
	cfg := p.modCfg.
		WithStdout(inst.stdout).
		WithStderr(inst.stderr).
		WithNanosleep(inst.sleep)
	ctx = context.WithValue(ctx, instanceKey{}, inst)
	alloc := &limitedMemory{limit: p.memLimit}
	mod, err := p.eng.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), p.compiled, cfg)
	inst.linear = alloc.mem
	if err != nil {
		if inst.linear != nil {
			inst.linear.Free()
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, p.startDeadline()
		}
		return nil, errorf(codes.Internal, "plugin %q: instantiating: %v", p.cfg.Name, err)
	}
	inst.mod = mod
	inst.mem = mod.Memory()
	inst.alloc = mod.ExportedFunction(abi.ExportAlloc)
	inst.free = mod.ExportedFunction(abi.ExportFree)
	inst.call = mod.ExportedFunction(abi.ExportCall)
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, err := init.Call(ctx); err != nil {
			inst.close()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, p.startDeadline()
			}
			msg := firstLine(err.Error())
			if f := inst.fatal(); f != "" {
				msg += " (guest stderr: " + f + ")"
			}
			return nil, errorf(codes.Internal, "plugin %q: running _initialize: %s", p.cfg.Name, msg)
		}
	}
	return inst, nil
}

// instantiateHost instantiates the svidagent_host_v1 module (ABI.md §5) in
// an engine's runtime, once for all its plugins. Its functions find the
// calling instance, and through it the plugin's grants, in the context of
// the host's call into the guest (instanceKey); without one, or when it is
// not the module calling, they refuse.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export("log").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostCall), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("ptr", "len").
		Export("call").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostTake), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("ptr", "len").
		Export("take").
		Instantiate(ctx)
	return err
}

func hostLog(ctx context.Context, m api.Module, stack []uint64) {
	level, ptr, n := int32(uint32(stack[0])), uint32(stack[1]), uint32(stack[2])
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	if inst == nil || inst.mod != m || ctx.Err() != nil {
		return
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		return
	}
	inst.svc.Logger.Line(ctx, slog.Level(level), string(b))
}

func hostCall(ctx context.Context, m api.Module, stack []uint64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	stack[0] = uint64(uint32(0xffffffff)) // -1
	if inst == nil || inst.mod != m {
		return
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		return
	}
	method, payload, err := abi.DecodeRequest(b)
	if err != nil {
		return
	}
	payload = bytes.Clone(payload)
	var resp []byte
	if err := ctx.Err(); err != nil {
		resp = abi.EncodeResponse(uint32(codes.DeadlineExceeded), "the call's deadline has passed", nil)
	} else {
		code, msg, out := inst.svc.Handle(ctx, "/"+method, payload)
		resp = abi.EncodeResponse(code, msg, out)
	}
	inst.pending, inst.hasPending = resp, true
	stack[0] = uint64(uint32(len(resp)))
}

func hostTake(ctx context.Context, m api.Module, stack []uint64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	stack[0] = uint64(uint32(0xffffffff)) // -1
	if inst == nil || inst.mod != m || !inst.hasPending || int(n) < len(inst.pending) {
		return
	}
	if !m.Memory().Write(ptr, inst.pending) {
		return
	}
	stack[0] = uint64(uint32(len(inst.pending)))
	inst.pending, inst.hasPending = nil, false
}

// lineWriter forwards a guest stream to the plugin's Logger line by line.
type lineWriter struct {
	logger *services.Logger
	level  slog.Level
	stream string

	mu    sync.Mutex
	buf   []byte
	fatal string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLineBytes {
				w.emit(string(w.buf[:maxLineBytes]))
				w.buf = w.buf[maxLineBytes:]
				continue
			}
			break
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	w.buf = bytes.Clone(w.buf) // don't pin a large backing array
	return len(b), nil
}

func (w *lineWriter) emit(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	if w.fatal == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		w.fatal = line
	}
	w.logger.Line(context.Background(), w.level, line, "stream", w.stream)
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) fatalLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fatal
}

func (w *lineWriter) resetFatal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fatal = ""
}

// errorf returns a gRPC status error.
func errorf(code codes.Code, format string, args ...any) error {
	return statusError(code, fmt.Sprintf(format, args...))
}
