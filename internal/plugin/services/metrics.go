package services

import (
	"context"
	"errors"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"github.com/svidagent/svidagent/hostapi/v1/abi"
	"github.com/svidagent/svidagent/internal/metrics"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Full method and service names of the Metrics host service.
const (
	MethodMetricsCounter = abi.Metrics_Counter_FullMethodName
	ServiceMetrics       = abi.Metrics_ServiceName
)

// CounterSink receives plugin counters; *metrics.Metrics is the agent's.
// An error wrapping metrics.ErrTooManySeries is answered
// RESOURCE_EXHAUSTED, any other INVALID_ARGUMENT.
type CounterSink interface {
	AddPluginCounter(plugin, name, help string, labels map[string]string, delta float64) error
}

// Metrics serves svidagent.host.v1.Metrics for one plugin: its counters
// are namespaced by the plugin's name.
type Metrics struct {
	hostv1.UnimplementedMetricsServer
	sink   CounterSink
	plugin string
}

// NewMetrics returns the Metrics service of the plugin named plugin (its
// block label), adding to sink.
func NewMetrics(sink CounterSink, plugin string) *Metrics {
	return &Metrics{sink: sink, plugin: plugin}
}

// Counter adds req.Delta to the plugin's counter req.Name.
func (m *Metrics) Counter(_ context.Context, req *hostv1.AddCounter) (*hostv1.AddCounterResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "adding to a counter: empty request")
	}
	err := m.sink.AddPluginCounter(m.plugin, req.GetName(), req.GetHelp(), req.GetLabels(), req.GetDelta())
	switch {
	case err == nil:
		return &hostv1.AddCounterResponse{}, nil
	case errors.Is(err, metrics.ErrTooManySeries):
		return nil, status.Errorf(codes.ResourceExhausted, "adding to counter %q: %v", req.GetName(), err)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "adding to counter %q: %v", req.GetName(), err)
	}
}
