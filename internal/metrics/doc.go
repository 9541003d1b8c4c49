// Package metrics defines every Prometheus metric of svidagent, in this one
// place, on a registry of its own: an agent embedded in another program
// never touches the global default registry, and two agents in one process
// never collide.
//
// Names follow svidagent_<subsystem>_<name>. docs/METRICS.md lists them.
//
//	m := metrics.New("v1.2.3")
//	m.Rotation("web")
//	m.WriteDuration("web", "files", 3*time.Millisecond)
//	http.Handle("/metrics", m.Handler())
//
// Plugins add counters of their own through the host service
// svidagent.host.v1.Metrics ([Metrics.AddPluginCounter]); they are
// exported as svidagent_plugin_<plugin>_<name>, at most
// [MaxSeriesPerPlugin] series per plugin.
//
// A nil *Metrics is valid and records nothing, so that code paths without
// an agent (tests, one-shot helpers) need no checks.
package metrics
