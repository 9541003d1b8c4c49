// Package bench holds svidagent's performance benchmarks (issue 6 §3): the
// figures in docs/PERFORMANCE.md and the commands that reproduce them.
//
// The benchmarks drive the real svidagent binary as a process, against the
// fake Workload API (internal/fakeworkloadapi, a real gRPC server on a unix
// socket), the real SPIRE (internal/spiretest) or the dev issuer. They take
// minutes, so they are guarded: go test ./... builds them and returns at
// once unless SVIDAGENT_BENCH=1 is set.
//
//	SVIDAGENT_BENCH=1 go test -count=1 -v -timeout 30m ./bench/
//	bench/run.sh   # everything, including the go test -bench figures
//
// Each test prints its figures on lines starting with BENCH-FIGURE, which
// bench/run.sh collects.
package bench
