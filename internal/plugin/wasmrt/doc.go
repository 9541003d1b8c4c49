// Package wasmrt runs svidagent plugins compiled to WebAssembly on wazero,
// speaking the ABI of hostapi/ABI.md. A [Plugin] implements
// adapter.Conn; internal/plugin/adapter adapts it onto the hostapi
// interfaces.
//
//	p, err := wasmrt.Open(ctx, wasmrt.Config{
//		Path:     "/etc/svidagent/plugins/webhook.wasm",
//		SHA256:   "9f86d08188…",
//		Kind:     hostapi.KindNotifier,
//		Name:     "webhook",
//		Logger:   log,
//		CacheDir: "/var/lib/svidagent/wasm-cache",
//		AllowHosts: []string{"hooks.example.com"},
//	})
//	if err != nil { ... }
//	defer p.Close()
//	err = p.Invoke(ctx, adapter.MethodNotify, req, &notifierv1.NotifyResponse{})
//
// What Open guarantees, before any guest code runs: the file's sha256 is
// the pinned one (checked on the very bytes that are compiled), and the
// compiled module has the exports of ABI v1 (marker, memory, allocator,
// svidagent_call; no _start).
//
// Isolation: each instance gets WASI with no filesystem (a writer gets its
// output directory as /out), no sockets, no args, only the configured
// environment (GOMEMLIMIT defaults to 3/4 of the memory limit), real
// clocks and crypto/rand; stdout and stderr go to the agent's log line by
// line, tagged with the plugin and rate limited with the log import. Memory
// is capped (default 32 MiB), and every call runs under a deadline
// enforced by wazero's CloseOnContextDone; host functions (log, call, take,
// and the guest's sleeps) watch the call's context themselves.
//
// Sharing: plugins opened with the same CacheDir share one wazero runtime,
// and plugins of the same module (by sha256) share its compiled code, so
// the machine code of a module is held and compiled once however many
// plugins run it. Instances are never shared: each plugin's instance has
// its own linear memory (capped by the plugin's limit through its memory
// allocator; on Linux an mmap reservation whose untouched pages cost no
// RSS), module config (environment, /out, stdout/stderr, sleep hook) and
// grants, which the host module's functions reach only through the calling
// instance.
//
// Concurrency: calls are serialised per plugin by a mutex; there is one
// instance, never entered concurrently. Failure: a trap, an exit, a
// deadline, memory exhaustion or a malformed reply closes and discards the
// instance (wazero leaves an instance that trapped open), and a fresh one
// is started right away in the background: instantiated from the compiled
// module, its _initialize run and the last successful Describe and
// Configure replayed to it, under the plugin's start deadline
// (Limits.StartTimeout, default 10 s), not under any call's. The next call
// waits for it (bounded by its context) and then gets its full call
// timeout, so a guest whose start is slower than its call timeout still
// recovers. A start that fails or outlives its deadline is reported to the
// call that waits for it, and the call after that starts again; a call
// that finds a start already failed before it came (nobody waited for it)
// does not report that old error but starts again and waits. The first
// instance is started the same way, by the first call.
package wasmrt
