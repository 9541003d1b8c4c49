package subproc_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/svidagent/svidagent/internal/plugin/services"
	"github.com/svidagent/svidagent/internal/plugin/subproc"
)

// brokerForgetsAfter is how long go-plugin's broker keeps the connection
// details of a service the host accepted on (5 s in go-plugin v1.8.0),
// plus a margin.
const brokerForgetsAfter = 6 * time.Second

// TestHostCallLongAfterDescribe: a plugin's first host call may come long
// after it started (a rotation an hour later). The plugin must have
// claimed the host services' connection at Describe, before go-plugin's
// broker forgot its details. The wait is the condition under test, not a
// synchronisation: nothing happens in it that the test could wait for.
func TestHostCallLongAfterDescribe(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	web, err := services.NewHTTP(services.HTTPConfig{AllowHosts: []string{u.Host}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := open(t, func(c *subproc.Config) {
		c.Services = &services.Services{Logger: services.NewLogger(slog.New(slog.DiscardHandler), c.Name, 0), HTTP: web}
	})
	describe(t, p)
	time.Sleep(brokerForgetsAfter)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := notify(ctx, p, "http", srv.URL); err != nil {
		t.Errorf("first host call %s after Describe: %v", brokerForgetsAfter, err)
	}
}
