#!/usr/bin/env bash
# bench/run.sh — every figure of docs/PERFORMANCE.md, in one run.
#
#   bench/run.sh [OUTDIR]      (default: $TMPDIR/svidagent-bench)
#
# Needs the SPIRE binaries for the one-shot figure (make spire) and Debian's
# strace for the idle syscall summary (optional). Takes 15-30 minutes on
# the 2-core machine, most of it in the cold WASM compiles and the 60 s idle
# run (SVIDAGENT_BENCH_SCALE_MAX=100 skips the 1,000-identity scale runs). Each step's output goes to OUTDIR/<step>.txt; the
# BENCH-FIGURE lines and the benchmark results are what PERFORMANCE.md
# quotes. The machine and its load are recorded in OUTDIR/machine.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${TMPDIR:-/tmp}/svidagent-bench}"
mkdir -p "$out"
BENCHSTAT="golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

{
	echo "date: $(date -u +%FT%TZ)"
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo
	go version
	echo "uptime: $(uptime)"
	df -T "${TMPDIR:-/tmp}" /dev/shm | tail -n +2
} | tee "$out/machine.txt"

step() { # step NAME CMD...: run CMD, tee its output to OUTDIR/NAME.txt
	local name=$1
	shift
	echo "== $name: $*"
	echo "uptime: $(uptime)" >"$out/$name.txt"
	"$@" 2>&1 | tee -a "$out/$name.txt" | grep -E '^(BENCH-FIGURE|Benchmark|--- FAIL|FAIL|ok)' || true
	echo "uptime: $(uptime)" >>"$out/$name.txt"
}

export SVIDAGENT_BENCH=1
SPIRE_BIN_DIR="${SPIRE_BIN_DIR:-$(scripts/build-spire.sh | tail -n 1)}"
export SPIRE_BIN_DIR

# §1 rotation latency, out of process (1,000 rotations per layout, disk and tmpfs)
step rotlat go test -count=1 -v -timeout 30m -run '^TestRotationLatency$' ./bench/
# §1 the in-process rotation path and its profile; disk vs tmpfs with benchstat
step rotation-disk go test -run '^$' -bench '^BenchmarkRotation$' -benchmem -count 10 \
	-cpuprofile "$out/rotation.cpu" -o "$out/agent.test" ./agent/
step rotation-tmpfs env TMPDIR=/dev/shm go test -run '^$' -bench '^BenchmarkRotation$' -benchmem -count 10 ./agent/
go tool pprof -top -nodecount=30 "$out/agent.test" "$out/rotation.cpu" >"$out/rotation-pprof.txt" 2>/dev/null || true
grep '^Benchmark' "$out/rotation-disk.txt" >"$out/rotation-disk.bench"
grep '^Benchmark' "$out/rotation-tmpfs.txt" >"$out/rotation-tmpfs.bench"
go run "$BENCHSTAT" disk="$out/rotation-disk.bench" tmpfs="$out/rotation-tmpfs.bench" | tee "$out/rotation-benchstat.txt"

# §2 one-shot fetch against the real SPIRE (median of 10)
step oneshot go test -count=1 -v -timeout 10m -run '^TestOneShot$' ./bench/
# §3 daemon idle over 60 s (and a second 60 s window under strace -f -c)
step idle go test -count=1 -v -timeout 10m -run '^TestIdle$' ./bench/
# §4 plugin call overhead (4 KiB), load time cold/warm, RSS with N WASM plugins
step invoke go test -run '^$' -bench 'InvokeNotify' -benchmem -count 5 \
	./internal/plugin/adapter/ ./internal/plugin/wasmrt/ ./internal/plugin/subproc/
step load go test -run '^$' -bench 'BenchmarkOpen|BenchmarkStart' -benchtime 3x -benchmem -count 3 \
	./internal/plugin/wasmrt/ ./internal/plugin/subproc/
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$out/webhook.wasm" ./examples/notifier-webhook
go build -o "$out/wasmrss" ./bench/wasmrss
for n in 1 10; do
	step "wasmrss-$n" "$out/wasmrss" -wasm "$out/webhook.wasm" -n "$n"
done
rm -rf "$out/wasm-cache"
"$out/wasmrss" -wasm "$out/webhook.wasm" -n 1 -cache "$out/wasm-cache" >/dev/null # fill the cache
step wasmrss-10-warm "$out/wasmrss" -wasm "$out/webhook.wasm" -n 10 -cache "$out/wasm-cache"
# §5 scale: 1, 10, 100, 1,000 identities rotating at once, disk and tmpfs
step scale go test -count=1 -v -timeout 60m -run '^TestScale$' ./bench/
step scale-inprocess go test -run '^$' -bench 'ScaleInProcess' -benchtime 3x \
	-cpuprofile "$out/scale.cpu" -o "$out/bench.test" ./bench/
go tool pprof -top -cum -nodecount=30 "$out/bench.test" "$out/scale.cpu" >"$out/scale-pprof.txt" 2>/dev/null || true
# §4 and §6 issue 10: the notifier template (sdk/notifier) as ten distinct
# modules in one runtime (RSS, compiled code), its call cost in the agent's
# runtime, every plugin's module size
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$out/template-notifier.wasm" ./sdk/templates/notifier
step wasmrss-distinct "$out/wasmrss" -wasm "$out/template-notifier.wasm" -config '{"message":"m"}' -n 10 -distinct
step guest-call go test -run '^$' -bench 'Notify' -benchmem -count 5 ./sdk/notifier/ ./sdk/wasm/
step guestsize bench/guestsize.sh
# §4 issue 10: ten distinct Go-SDK notifiers in one agent, cold and warm cache
step plugin-start go test -count=1 -v -timeout 30m -run '^TestPluginColdStart$' ./bench/
# §7 beside spiffe-helper on one helper.conf: one-shot wall, idle RSS, rotation
# latency, with ratios when SPIFFE_HELPER names a spiffe-helper binary (built by
# you, outside this repository: docs/PERFORMANCE.md §7)
step vshelper go test -count=1 -v -timeout 30m -run '^TestVsHelper$' ./bench/
echo "done: $out"
