// Package notifierc holds the C notifier example (notifier.c, built by
// build.sh into a WASI reactor) and its test, which runs the module through
// internal/plugin/wasmrt and internal/plugin/adapter exactly as the agent does.
// There is no Go code to import here: see README.md.
package notifierc
