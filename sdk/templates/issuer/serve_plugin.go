//go:build !wasip1

package main

import "github.com/svidagent/svidagent/sdk/goplugin"

func main() { goplugin.Serve(info, &issuer{}) }
