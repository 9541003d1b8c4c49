package agent_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/config"
)

// TestHealthHandlerNeverPanics: paths that validate refuses, reaching the
// agent anyway (an embedder's Config), used to panic in net/http's
// ServeMux (a pattern conflict with /status, an unclean path, a
// wildcard). The handler serves them as exact paths and never panics.
func TestHealthHandlerNeverPanics(t *testing.T) {
	tests := []struct {
		name        string
		live, ready string
		get         string
		want        int
	}{
		{name: "readiness on /status", live: "/live", ready: "/status", get: "/status", want: http.StatusServiceUnavailable},
		{name: "readiness on /metrics", live: "/live", ready: "/metrics", get: "/metrics", want: http.StatusServiceUnavailable},
		{name: "unclean path", live: "/a/../status", ready: "/ready", get: "/live", want: http.StatusNotFound},
		{name: "same path twice: liveness first", live: "/h", ready: "/h", get: "/h", want: http.StatusOK},
		{name: "wildcard", live: "/live", ready: "/{x}", get: "/{x}", want: http.StatusServiceUnavailable},
		{name: "method and space", live: "POST /x y", ready: "/ready", get: "/status", want: http.StatusOK},
		{name: "empty paths are the defaults", live: "", ready: "", get: "/ready", want: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{DaemonMode: true, Health: config.Health{LivenessPath: tt.live, ReadinessPath: tt.ready}}
			h := agent.New(cfg).HealthHandler()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+tt.get, nil).WithContext(onLoopback()))
			if rec.Code != tt.want {
				t.Fatalf("GET %s = %d, want %d", tt.get, rec.Code, tt.want)
			}
		})
	}
}

func onLoopback() context.Context {
	return context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8081})
}

func onNetwork() context.Context {
	return context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 8081})
}

// TestHealthExposure: a request that reached the listener on a loopback
// address gets /status and /metrics; one that reached it on any other
// address gets the probes only, unless expose_status is set.
func TestHealthExposure(t *testing.T) {
	tests := []struct {
		name   string
		ctx    context.Context
		expose bool
		path   string
		method string
		want   int
	}{
		{name: "status on loopback", ctx: onLoopback(), path: "/status", want: http.StatusOK},
		{name: "metrics on loopback", ctx: onLoopback(), path: "/metrics", want: http.StatusOK},
		{name: "status on network", ctx: onNetwork(), path: "/status", want: http.StatusNotFound},
		{name: "metrics on network", ctx: onNetwork(), path: "/metrics", want: http.StatusNotFound},
		{name: "no local address", ctx: context.Background(), path: "/status", want: http.StatusNotFound},
		{name: "liveness on network", ctx: onNetwork(), path: "/live", want: http.StatusOK},
		{name: "readiness on network", ctx: onNetwork(), path: "/ready", want: http.StatusServiceUnavailable},
		{name: "status exposed", ctx: onNetwork(), expose: true, path: "/status", want: http.StatusOK},
		{name: "metrics exposed", ctx: onNetwork(), expose: true, path: "/metrics", want: http.StatusOK},
		{name: "unknown path", ctx: onLoopback(), path: "/nope", want: http.StatusNotFound},
		{name: "post", ctx: onLoopback(), path: "/status", method: http.MethodPost, want: http.StatusMethodNotAllowed},
		{name: "head", ctx: onNetwork(), path: "/live", method: http.MethodHead, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{DaemonMode: true, Health: config.Health{
				Address: ":8081", LivenessPath: "/live", ReadinessPath: "/ready", ExposeStatus: tt.expose}}
			h := agent.New(cfg).HealthHandler()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, "http://host"+tt.path, nil).WithContext(tt.ctx))
			if rec.Code != tt.want {
				t.Fatalf("%s %s = %d, want %d", method, tt.path, rec.Code, tt.want)
			}
			// A probe seen from the network tells its verdicts only.
			local, _ := tt.ctx.Value(http.LocalAddrContextKey).(*net.TCPAddr)
			if body := rec.Body.String(); (local == nil || !local.IP.IsLoopback()) && !tt.expose && rec.Code != http.StatusNotFound && method == http.MethodGet {
				if strings.Contains(body, "svids") || strings.Contains(body, "plugins") || !strings.Contains(body, `"live"`) {
					t.Fatalf("%s %s body = %s, want the verdicts only", method, tt.path, body)
				}
			}
		})
	}
}

// TestHealthExposureListener runs the real listener on every interface:
// over loopback /status is served, over the machine's other address it is
// not.
func TestHealthExposureListener(t *testing.T) {
	other := nonLoopbackIP(t)
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cfg := &config.Config{DaemonMode: true, Health: config.Health{Address: ":0", LivenessPath: "/live", ReadinessPath: "/ready"}}
	srv := &http.Server{Handler: agent.New(cfg).HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	for _, tt := range []struct {
		host string
		want int
	}{
		{"127.0.0.1", http.StatusOK},
		{other.String(), http.StatusNotFound},
	} {
		resp, err := http.Get("http://" + net.JoinHostPort(tt.host, port) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /status via %s = %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
		resp, err = http.Get("http://" + net.JoinHostPort(tt.host, port) + "/live")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /live via %s = %d, want 200", tt.host, resp.StatusCode)
		}
	}
}

// nonLoopbackIP returns an IPv4 address of this machine other than
// loopback.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to reach the listener by")
	return nil
}
