// Package inproc serves a Go plugin implementation inside the calling
// process, with the same dispatch that sdk/wasm and sdk/goplugin run in a
// plugin: calls go in as method names and protobuf bytes and come back as
// a status code of hostapi/ABI.md, a message and protobuf bytes.
//
// It exists so that a host can run a plugin implementation without a
// sandbox or a subprocess (conformance.Run's in-process targets, the
// agent's own tests) through the exact code path of a real plugin. A
// plugin author does not need it: serve with sdk/wasm or sdk/goplugin.
//
//	p, err := inproc.New(sdk.Info{Name: "notifier-example"}, impl, nil)
//	if err != nil { ... }
//	code, msg, resp := p.Handle(ctx, abi.Plugin_Describe_FullMethodName, req)
package inproc
