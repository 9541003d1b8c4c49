// Package services implements the host services of host API v1
// (svidagent.host.v1.Logger and svidagent.host.v1.HTTP) that plugins call
// back into. Both plugin runtimes use the same implementations: the WASM
// runtime dispatches the `call` import to [Services.Handle]; the go-plugin
// runtime registers [Logger] and [HTTP] as gRPC servers on its broker.
//
//	logger := services.NewLogger(log, "webhook", 0)     // 100 lines/s, burst 200
//	web, err := services.NewHTTP(services.HTTPConfig{
//		AllowHosts: []string{"hooks.example.com", "*.internal.example:8443"},
//	})
//	svc := &services.Services{Logger: logger, HTTP: web} // HTTP only if granted
//	code, msg, resp := svc.Handle(ctx, "/svidagent.host.v1.HTTP/Request", reqBytes)
//
// Errors from the servers are gRPC status errors with the codes of
// hostapi/ABI.md §4. A plugin's log line and attributes are logged through
// adapter.BoundText: escaped and capped at adapter.MaxTextBytes.
package services
