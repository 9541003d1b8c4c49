package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxSeriesPerPlugin caps the counter series one plugin can create, so
// that a plugin cannot exhaust the agent's memory or a scraper's.
const MaxSeriesPerPlugin = 100

// maxLabelsPerCounter caps the labels of one plugin counter.
const maxLabelsPerCounter = 8

// Errors of [Metrics.AddPluginCounter]; callers map them to gRPC codes.
var (
	// ErrInvalidCounter: a bad name, help, label or delta.
	ErrInvalidCounter = errors.New("invalid plugin counter")
	// ErrTooManySeries: the plugin reached MaxSeriesPerPlugin.
	ErrTooManySeries = errors.New("too many plugin counter series")
)

// pluginCounters is a collector of the counters plugins add through the
// host service. Their names are known only at run time, so it is an
// unchecked collector: Describe sends nothing.
type pluginCounters struct {
	mu     sync.Mutex
	byName map[string]*pluginCounter // by full metric name
	series map[string]int            // series per plugin
}

type pluginCounter struct {
	plugin string
	help   string
	labels []string // sorted label names
	desc   *prometheus.Desc
	values map[string]*pluginSeries // by joined label values
}

type pluginSeries struct {
	labelValues []string
	value       float64
}

func newPluginCounters() *pluginCounters {
	return &pluginCounters{byName: map[string]*pluginCounter{}, series: map[string]int{}}
}

// Describe sends nothing: the collector is unchecked.
func (*pluginCounters) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series.
func (c *pluginCounters) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range c.byName {
		for _, s := range pc.values {
			ch <- prometheus.MustNewConstMetric(pc.desc, prometheus.CounterValue, s.value, s.labelValues...)
		}
	}
}

// Sanitize maps s to a valid Prometheus name part: lowercase letters,
// digits and underscores, every other rune becoming '_'. It returns "" for
// a string with no letter or digit.
func Sanitize(s string) string {
	var b strings.Builder
	useful := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			useful = true
		default:
			b.WriteByte('_')
		}
	}
	if !useful {
		return ""
	}
	return b.String()
}

// PluginCounterName is the exported name of a plugin's counter:
// svidagent_plugin_<plugin>_<name>, both sanitized.
func PluginCounterName(plugin, name string) string {
	return Namespace + "_plugin_" + Sanitize(plugin) + "_" + Sanitize(name)
}

// AddPluginCounter adds delta to the plugin's counter name with labels,
// creating it (with help) on first use. A counter keeps the help and label
// names of its first use: a later call with other label names is refused.
// A plugin has at most MaxSeriesPerPlugin series. Errors wrap
// ErrInvalidCounter or ErrTooManySeries.
func (m *Metrics) AddPluginCounter(plugin, name, help string, labels map[string]string, delta float64) error {
	if m == nil {
		return nil
	}
	return m.plugins.add(plugin, name, help, labels, delta)
}

func (c *pluginCounters) add(plugin, name, help string, labels map[string]string, delta float64) error {
	if Sanitize(plugin) == "" {
		return fmt.Errorf("%w: the plugin name %q has no letter or digit", ErrInvalidCounter, plugin)
	}
	if Sanitize(name) == "" {
		return fmt.Errorf("%w: the counter name %q has no letter or digit", ErrInvalidCounter, name)
	}
	if len(name) > 100 || len(help) > 500 {
		return fmt.Errorf("%w: the name is longer than 100 bytes or the help longer than 500", ErrInvalidCounter)
	}
	if math.IsNaN(delta) || math.IsInf(delta, 0) || delta < 0 {
		return fmt.Errorf("%w: delta %v: a counter only goes up; the delta must be finite and not negative", ErrInvalidCounter, delta)
	}
	if len(labels) > maxLabelsPerCounter {
		return fmt.Errorf("%w: %d labels; at most %d", ErrInvalidCounter, len(labels), maxLabelsPerCounter)
	}
	names := make([]string, 0, len(labels))
	byName := make(map[string]string, len(labels))
	for k, v := range labels {
		sk := Sanitize(k)
		if sk == "" || strings.HasPrefix(sk, "__") {
			return fmt.Errorf("%w: the label name %q is invalid", ErrInvalidCounter, k)
		}
		if sk[0] >= '0' && sk[0] <= '9' {
			sk = "_" + sk
		}
		if _, dup := byName[sk]; dup {
			return fmt.Errorf("%w: the label names collide as %q after sanitizing", ErrInvalidCounter, sk)
		}
		if len(v) > 200 {
			return fmt.Errorf("%w: the value of label %q is longer than 200 bytes", ErrInvalidCounter, k)
		}
		byName[sk] = v
		names = append(names, sk)
	}
	sort.Strings(names)
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = byName[n]
	}
	full := PluginCounterName(plugin, name)
	key := strings.Join(values, "\xff")

	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.byName[full]
	switch {
	case !ok:
		if c.series[plugin] >= MaxSeriesPerPlugin {
			return fmt.Errorf("%w: plugin %q has %d series, the most a plugin may have", ErrTooManySeries, plugin, MaxSeriesPerPlugin)
		}
		if help == "" {
			help = "Counter " + name + " of plugin " + plugin + "."
		}
		pc = &pluginCounter{
			plugin: plugin, help: help, labels: names,
			desc:   prometheus.NewDesc(full, help, names, prometheus.Labels{}),
			values: map[string]*pluginSeries{},
		}
		c.byName[full] = pc
	case pc.plugin != plugin:
		return fmt.Errorf("%w: %s is already a counter of plugin %q; choose another name", ErrInvalidCounter, full, pc.plugin)
	case !slices.Equal(pc.labels, names):
		return fmt.Errorf("%w: %s has the labels %v, not %v; a counter keeps the label names of its first use", ErrInvalidCounter, full, pc.labels, names)
	}
	s, ok := pc.values[key]
	if !ok {
		if c.series[plugin] >= MaxSeriesPerPlugin {
			return fmt.Errorf("%w: plugin %q has %d series, the most a plugin may have", ErrTooManySeries, plugin, MaxSeriesPerPlugin)
		}
		s = &pluginSeries{labelValues: values}
		pc.values[key] = s
		c.series[plugin]++
	}
	s.value += delta
	return nil
}
