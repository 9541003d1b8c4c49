// Package agent is the svidagent core: it keeps SPIFFE credentials (X.509
// and JWT SVIDs, trust bundles) fresh and hands them to writers and
// notifiers. It is embeddable:
//
//	cfg, err := agent.LoadConfig("agent.hcl")
//	if err != nil {
//		return err // hcl.Diagnostics with file:line:col
//	}
//	return agent.New(cfg, agent.WithLogger(logger)).Run(ctx)
//
// For each svid block the agent runs a pipeline: the issuer's updates (a
// Workload API stream, or renewals the core schedules at a fraction of the
// credential's lifetime) are merged into a snapshot; the latest complete
// snapshot is verified (every X.509 chain against its bundle), written by
// every writer, and then announced to every notifier. Updates that arrive
// while a delivery runs coalesce, and the last one is always delivered. A
// failed notification is tried again with backoff until it succeeds or a
// newer delivery supersedes it. At Run's start, writer and notifier
// plugins compile or start in the background: the built-in writers deliver
// at once, and a plugin gets the latest delivery when it is ready.
//
// Where things are: agent.go builds the plugins and runners; svid.go is
// one svid block's pipeline (issue, verify, write); notify.go a notifier's
// runner; external.go the external plugins and their background start;
// reload.go hot reload; health.go the probes and the health
// server; status.go /status. External plugins come from
// internal/plugin/load, the one place that opens them; the agent sees only
// hostapi interfaces.
package agent
