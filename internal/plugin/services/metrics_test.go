package services_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"github.com/svidagent/svidagent/internal/metrics"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// TestMetricsCounter drives the Metrics host service as the WASM runtime
// does, through Services.Handle with protobuf payloads, into the agent's
// real registry, and reads the result from its /metrics exposition.
func TestMetricsCounter(t *testing.T) {
	m := metrics.New("test")
	log, _ := newLog()
	svc := &services.Services{Logger: services.NewLogger(log, "vault", 0), Metrics: services.NewMetrics(m, "vault")}
	if got := svc.Names(); !contains(got, services.ServiceMetrics) {
		t.Fatalf("Names() = %v, want %s among them", got, services.ServiceMetrics)
	}
	call := func(req *hostv1.AddCounter) (codes.Code, string) {
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		code, msg, _ := svc.Handle(context.Background(), services.MethodMetricsCounter, b)
		return codes.Code(code), msg
	}
	tests := []struct {
		name string
		req  *hostv1.AddCounter
		want codes.Code
	}{
		{"first use", &hostv1.AddCounter{Name: "renewals_total", Help: "Vault token renewals.", Labels: map[string]string{"result": "ok"}, Delta: 1}, codes.OK},
		{"again", &hostv1.AddCounter{Name: "renewals_total", Labels: map[string]string{"result": "ok"}, Delta: 1}, codes.OK},
		{"negative delta", &hostv1.AddCounter{Name: "renewals_total", Labels: map[string]string{"result": "ok"}, Delta: -1}, codes.InvalidArgument},
		{"other label names", &hostv1.AddCounter{Name: "renewals_total", Labels: map[string]string{"x": "ok"}, Delta: 1}, codes.InvalidArgument},
		{"no name", &hostv1.AddCounter{Delta: 1}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := call(tt.req); code != tt.want {
				t.Fatalf("code %v (%s), want %v", code, msg, tt.want)
			}
		})
	}
	t.Run("series cap is RESOURCE_EXHAUSTED", func(t *testing.T) {
		var code codes.Code
		var msg string
		for i := 0; i <= metrics.MaxSeriesPerPlugin && code == codes.OK; i++ {
			code, msg = call(&hostv1.AddCounter{Name: "spam", Labels: map[string]string{"i": fmt.Sprint(i)}, Delta: 1})
		}
		if code != codes.ResourceExhausted {
			t.Fatalf("code %v (%s), want ResourceExhausted", code, msg)
		}
	})
	t.Run("not granted", func(t *testing.T) {
		bare := &services.Services{Logger: services.NewLogger(log, "x", 0)}
		if contains(bare.Names(), services.ServiceMetrics) {
			t.Error("Metrics listed without the grant")
		}
		code, _, _ := bare.Handle(context.Background(), services.MethodMetricsCounter, nil)
		if codes.Code(code) != codes.Unimplemented {
			t.Errorf("code %v, want Unimplemented", codes.Code(code))
		}
	})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"# HELP svidagent_plugin_vault_renewals_total Vault token renewals.",
		`svidagent_plugin_vault_renewals_total{result="ok"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
