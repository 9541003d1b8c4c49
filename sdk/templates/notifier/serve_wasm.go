//go:build wasip1

package main

import "github.com/svidagent/svidagent/sdk/wasm"

// With -buildmode=c-shared, init runs in _initialize; main never runs.
func init() { wasm.ServeNotifier(info, &notifier{}) }

func main() {}
