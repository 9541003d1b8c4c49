//go:build !wasip1

package main

import "github.com/svidagent/svidagent/sdk/goplugin"

func main() { goplugin.Serve(info, newWriter()) }

// inWASM is false: a subprocess has the files its user can read and write.
const inWASM = false
