package services_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/svidagent/svidagent/internal/testkit"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/services"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func newLog() (*slog.Logger, *testkit.Buffer) {
	buf := &testkit.Buffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func TestLoggerTagsAndLevels(t *testing.T) {
	log, buf := newLog()
	l := services.NewLogger(log, "webhook", 0)
	if _, err := l.Log(context.Background(), &hostv1.LogRequest{Level: 4, Message: "hello", Attrs: []string{"k", "v", "odd"}}); err != nil {
		t.Fatal(err)
	}
	recs := buf.Records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	r := recs[0]
	for k, want := range map[string]any{"level": "WARN", "msg": "hello", "component": "plugin", "plugin": "webhook", "k": "v", "odd": ""} {
		if r[k] != want {
			t.Errorf("record[%q] = %v, want %v", k, r[k], want)
		}
	}
}

// TestLoggerBoundsPluginText: a plugin's log line and attributes of many
// MiB with terminal escapes are logged bounded and escaped.
func TestLoggerBoundsPluginText(t *testing.T) {
	log, buf := newLog()
	l := services.NewLogger(log, "p", 0)
	hostile := "\x1b]0;pwned\x07" + strings.Repeat("X", 4<<20)
	if _, err := l.Log(context.Background(), &hostv1.LogRequest{Message: hostile, Attrs: []string{hostile, hostile}}); err != nil {
		t.Fatal(err)
	}
	l.Line(context.Background(), slog.LevelInfo, hostile, slog.String(hostile, hostile), "k", hostile)
	out := buf.String()
	if len(out) > 8*adapter.MaxTextBytes || strings.ContainsRune(out, 0x1b) || !strings.Contains(out, "bytes truncated") {
		t.Errorf("logged %d bytes (ESC kept: %v) for two hostile lines: %.200q", len(out), strings.ContainsRune(out, 0x1b), out)
	}
}

func TestLoggerRateLimit(t *testing.T) {
	log, buf := newLog()
	l := services.NewLogger(log, "p", 10) // burst 20
	now := time.Unix(1000, 0)
	services.SetClock(l, func() time.Time { return now })
	ctx := context.Background()
	accepted := 0
	for i := 0; i < 50; i++ {
		if l.Line(ctx, slog.LevelInfo, "x") {
			accepted++
		}
	}
	if accepted != 20 {
		t.Fatalf("accepted %d of 50 lines at once, want the burst of 20", accepted)
	}
	if d := l.Dropped(); d != 30 {
		t.Fatalf("Dropped() = %d, want 30", d)
	}
	_, err := l.Log(ctx, &hostv1.LogRequest{Message: "over"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Log over the limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	now = now.Add(time.Second) // 10 tokens back
	if !l.Line(ctx, slog.LevelInfo, "back") {
		t.Fatal("line after refill dropped")
	}
	recs := buf.Records(t)
	if len(recs) != 22 {
		t.Fatalf("got %d records, want 20 lines, 1 summary, 1 line", len(recs))
	}
	sum := recs[20]
	if sum["dropped"] != float64(31) || sum["level"] != "WARN" {
		t.Fatalf("summary = %v, want dropped=31 at WARN", sum)
	}
	if recs[21]["msg"] != "back" {
		t.Fatalf("last record = %v, want the accepted line", recs[21])
	}
	if l.Dropped() != 0 {
		t.Fatalf("Dropped() after summary = %d", l.Dropped())
	}
}

// TestLoggerFloodSummaries: under a sustained flood (100 lines/s offered
// for 10 s at a rate of 10), the drop summary is logged at most once a
// second, not before every accepted line, and no drop goes uncounted.
func TestLoggerFloodSummaries(t *testing.T) {
	log, buf := newLog()
	l := services.NewLogger(log, "p", 10)
	now := time.Unix(1000, 0)
	services.SetClock(l, func() time.Time { return now })
	ctx := context.Background()
	const offered = 1000
	accepted := 0
	for range offered {
		if l.Line(ctx, slog.LevelInfo, "x") {
			accepted++
		}
		now = now.Add(10 * time.Millisecond)
	}
	l.Flush(ctx)
	summaries, dropped := 0, 0
	for _, r := range buf.Records(t) {
		if d, ok := r["dropped"].(float64); ok {
			summaries++
			dropped += int(d)
		}
	}
	if summaries > 11 {
		t.Errorf("%d drop summaries in 10 s, want at most one a second", summaries)
	}
	if accepted+dropped != offered {
		t.Errorf("accepted %d + summarised %d dropped = %d, want the %d offered", accepted, dropped, accepted+dropped, offered)
	}
}

func TestLoggerFlush(t *testing.T) {
	log, buf := newLog()
	l := services.NewLogger(log, "p", 1) // burst 2
	services.SetClock(l, func() time.Time { return time.Unix(0, 0) })
	for i := 0; i < 5; i++ {
		l.Line(context.Background(), slog.LevelInfo, "x")
	}
	l.Flush(context.Background())
	recs := buf.Records(t)
	if len(recs) != 3 || recs[2]["dropped"] != float64(3) {
		t.Fatalf("records = %v, want 2 lines and a summary of 3 dropped", recs)
	}
}

func TestLoggerHammer(t *testing.T) {
	log, _ := newLog()
	l := services.NewLogger(log, "p", 1000)
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if l.Line(context.Background(), slog.LevelDebug, "x") {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	l.Flush(context.Background())
	if a := accepted.Load(); a < 2000 {
		t.Fatalf("accepted %d lines, want at least the burst of 2000", a)
	}
	if l.Dropped() != 0 {
		t.Fatalf("Dropped() after Flush = %d", l.Dropped())
	}
}

func TestParseAllowHosts(t *testing.T) {
	for _, bad := range []string{"", "http://x.example", "a.*.example", "*.", "host:"} {
		if _, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{bad}}); err == nil {
			t.Errorf("NewHTTP(%q) succeeded, want an error", bad)
		}
	}
}

func TestHTTPAllowlist(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 2048))
		case "/redirect":
			http.Redirect(w, r, "http://denied.example/", http.StatusFound)
		default:
			w.Header().Set("X-Got", r.Header.Get("X-Send"))
			fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	tests := []struct {
		name  string
		allow []string
		url   string
		code  codes.Code
		body  string
	}{
		{name: "exact ip", allow: []string{"127.0.0.1"}, url: srv.URL + "/a", body: "POST /a"},
		{name: "ip and port", allow: []string{"127.0.0.1:" + port}, url: srv.URL + "/b", body: "POST /b"},
		{name: "localhost name and its address", allow: []string{"LocalHost", "127.0.0.1"}, url: "http://localhost:" + port + "/c", body: "POST /c"},
		{name: "localhost name alone", allow: []string{"LocalHost"}, url: "http://localhost:" + port + "/c", code: codes.PermissionDenied},
		{name: "wrong port", allow: []string{"127.0.0.1:1"}, url: srv.URL, code: codes.PermissionDenied},
		{name: "not listed", allow: []string{"hooks.example.com"}, url: srv.URL, code: codes.PermissionDenied},
		{name: "wildcard never matches ip", allow: []string{"*.0.0.1"}, url: srv.URL, code: codes.PermissionDenied},
		{name: "wildcard not apex", allow: []string{"*.example.com"}, url: "http://example.com/", code: codes.PermissionDenied},
		{name: "no scheme file", allow: []string{"127.0.0.1"}, url: "file:///etc/passwd", code: codes.InvalidArgument},
		{name: "body cap", allow: []string{"127.0.0.1"}, url: srv.URL + "/big", code: codes.ResourceExhausted},
		{name: "redirect to denied host", allow: []string{"127.0.0.1"}, url: srv.URL + "/redirect", code: codes.PermissionDenied},
		{name: "nothing listening", allow: []string{"127.0.0.1"}, url: "http://127.0.0.1:1/", code: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := services.NewHTTP(services.HTTPConfig{AllowHosts: tt.allow, MaxBodyBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			resp, err := h.Request(context.Background(), &hostv1.HTTPRequest{
				Method: "POST", Url: tt.url, Body: []byte("b"),
				Headers: []*hostv1.Header{{Name: "X-Send", Value: "yes"}},
			})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("Request(%s) = %v, want %v", tt.url, err, tt.code)
			}
			if tt.code == codes.PermissionDenied {
				if !strings.Contains(err.Error(), "allow { hosts = [...] }") {
					t.Errorf("error %q does not say how to allow the host", err)
				}
				if tt.name != "redirect to denied host" && hits.Load() != before {
					t.Errorf("a refused request reached the server")
				}
			}
			if tt.code != codes.OK {
				return
			}
			if string(resp.GetBody()) != tt.body || resp.GetStatus() != 200 {
				t.Fatalf("response %d %q, want 200 %q", resp.GetStatus(), resp.GetBody(), tt.body)
			}
			found := false
			for _, hd := range resp.GetHeaders() {
				found = found || hd.GetName() == "X-Got" && hd.GetValue() == "yes"
			}
			if !found {
				t.Errorf("request header not sent or response header not returned: %v", resp.GetHeaders())
			}
		})
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Request(context.Background(), &hostv1.HTTPRequest{Url: srv.URL, TimeoutMs: 50})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Request = %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestServicesHandle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }))
	defer srv.Close()
	log, buf := newLog()
	web, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	must := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withHTTP := &services.Services{Logger: services.NewLogger(log, "p", 0), HTTP: web}
	without := &services.Services{Logger: services.NewLogger(log, "p", 0)}

	tests := []struct {
		name    string
		svc     *services.Services
		method  string
		payload []byte
		code    codes.Code
	}{
		{name: "log", svc: without, method: services.MethodLog, payload: must(&hostv1.LogRequest{Message: "via call"})},
		{name: "http", svc: withHTTP, method: services.MethodHTTPRequest, payload: must(&hostv1.HTTPRequest{Url: srv.URL})},
		{name: "http not granted", svc: without, method: services.MethodHTTPRequest, payload: must(&hostv1.HTTPRequest{Url: srv.URL}), code: codes.PermissionDenied},
		{name: "unknown", svc: withHTTP, method: "/svidagent.host.v1.Secrets/Get", code: codes.Unimplemented},
		{name: "garbage", svc: withHTTP, method: services.MethodHTTPRequest, payload: []byte{0xff, 0xff}, code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg, resp := tt.svc.Handle(context.Background(), tt.method, tt.payload)
			if codes.Code(code) != tt.code {
				t.Fatalf("Handle = %d %q, want %v", code, msg, tt.code)
			}
			if tt.code == codes.OK && msg != "" {
				t.Fatalf("OK with message %q", msg)
			}
			if tt.name == "http" {
				var r hostv1.HTTPResponse
				if err := proto.Unmarshal(resp, &r); err != nil || string(r.Body) != "pong" {
					t.Fatalf("response %v %q, want pong", err, r.Body)
				}
			}
		})
	}
	if recs := buf.Records(t); len(recs) != 1 || recs[0]["msg"] != "via call" {
		t.Fatalf("log records = %v, want the one line logged through Handle", recs)
	}
	if got := withHTTP.Names(); len(got) != 2 || got[1] != services.ServiceHTTP {
		t.Errorf("Names() = %v", got)
	}
	if got := without.Names(); len(got) != 1 || got[0] != services.ServiceLogger {
		t.Errorf("Names() = %v", got)
	}
}

func ExampleServices_Handle() {
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	svc := &services.Services{Logger: services.NewLogger(log, "webhook", 0)}
	req, _ := proto.Marshal(&hostv1.HTTPRequest{Url: "https://hooks.example.com/"})
	code, msg, _ := svc.Handle(context.Background(), services.MethodHTTPRequest, req)
	fmt.Println(codes.Code(code), msg)
	// Output:
	// PermissionDenied the HTTP host service is not granted to this plugin; add an allow { hosts = [...] } block to its config
}

// TestHTTPResolvedAddressRule: the allow-list holds after DNS resolution
// and redirects. An allowed name that resolves to a loopback, link-local,
// unspecified or multicast address is refused unless an allow entry names
// that address literally, and so is a redirect to a host or IP literal
// not allowed. Names are mapped by a test resolver; only loopback is ever
// dialled.
func TestHTTPResolvedAddressRule(t *testing.T) {
	var hits atomic.Int64
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/to-ip":
			http.Redirect(w, r, strings.Replace(srvURL, "127.0.0.1", "127.0.0.2", 1)+"/ok", http.StatusFound)
		case "/to-other":
			http.Redirect(w, r, "http://other.test/", http.StatusFound)
		case "/to-rebind":
			http.Redirect(w, r, "http://rebind.test/ok", http.StatusFound) // port 80: the literal entry names another port
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	names := map[string]string{
		"hooks.test":    "127.0.0.1",
		"rebind.test":   "127.0.0.1",
		"mapped.test":   "::ffff:127.0.0.1",
		"metadata.test": "169.254.169.254",
		"ll6.test":      "fe80::1",
		"any.test":      "0.0.0.0",
		"mcast.test":    "224.0.0.1",
		"other.test":    "127.0.0.1",
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		a, ok := names[host]
		if !ok {
			return nil, fmt.Errorf("no test address for %q", host)
		}
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	at := func(host, path string) string { return "http://" + net.JoinHostPort(host, port) + path }

	tests := []struct {
		name  string
		allow []string
		url   string
		code  codes.Code
	}{
		{name: "name resolving to loopback", allow: []string{"hooks.test"}, url: at("hooks.test", "/"), code: codes.PermissionDenied},
		{name: "name resolving to mapped loopback", allow: []string{"mapped.test"}, url: at("mapped.test", "/"), code: codes.PermissionDenied},
		{name: "name resolving to metadata", allow: []string{"metadata.test"}, url: at("metadata.test", "/"), code: codes.PermissionDenied},
		{name: "name resolving to fe80::/10", allow: []string{"ll6.test"}, url: at("ll6.test", "/"), code: codes.PermissionDenied},
		{name: "name resolving to unspecified", allow: []string{"any.test"}, url: at("any.test", "/"), code: codes.PermissionDenied},
		{name: "name resolving to multicast", allow: []string{"mcast.test"}, url: at("mcast.test", "/"), code: codes.PermissionDenied},
		{name: "wildcard resolving to loopback", allow: []string{"*.test"}, url: at("hooks.test", "/"), code: codes.PermissionDenied},
		{name: "loopback named literally", allow: []string{"hooks.test", "127.0.0.1"}, url: at("hooks.test", "/")},
		{name: "loopback literal with the port", allow: []string{"hooks.test", "127.0.0.1:" + port}, url: at("hooks.test", "/")},
		{name: "loopback literal, other port", allow: []string{"hooks.test", "127.0.0.1:1"}, url: at("hooks.test", "/"), code: codes.PermissionDenied},
		{name: "ip literal url", allow: []string{"127.0.0.1"}, url: srv.URL + "/"},
		{name: "redirect to metadata ip", allow: []string{"127.0.0.1"}, url: srv.URL + "/to-metadata", code: codes.PermissionDenied},
		{name: "redirect to another ip literal", allow: []string{"127.0.0.1"}, url: srv.URL + "/to-ip", code: codes.PermissionDenied},
		{name: "redirect to a host not allowed", allow: []string{"127.0.0.1"}, url: srv.URL + "/to-other", code: codes.PermissionDenied},
		{name: "redirect to an allowed name resolving to loopback", allow: []string{"127.0.0.1:" + port, "rebind.test"}, url: srv.URL + "/to-rebind", code: codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := services.NewHTTP(services.HTTPConfig{AllowHosts: tt.allow})
			if err != nil {
				t.Fatal(err)
			}
			services.SetLookup(h, lookup)
			before := hits.Load()
			resp, err := h.Request(context.Background(), &hostv1.HTTPRequest{Url: tt.url})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("Request(%s) = %v, want %v", tt.url, err, tt.code)
			}
			if tt.code == codes.OK {
				if string(resp.GetBody()) != "ok" {
					t.Errorf("body %q, want ok", resp.GetBody())
				}
				return
			}
			if !strings.Contains(err.Error(), "allow { hosts = [...] }") {
				t.Errorf("error %q does not say how to allow the host", err)
			}
			// A direct request is refused before any traffic; a redirect
			// reaches the allowed first hop only.
			want := before
			if strings.Contains(tt.url, "/to-") {
				want++
			}
			if hits.Load() != want {
				t.Errorf("the server saw %d requests, want %d", hits.Load()-before, want-before)
			}
		})
	}
}
