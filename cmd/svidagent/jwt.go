package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/svidagent/svidagent/agent"
)

// fetchJWT prints one JWT-SVID for f's audiences on stdout, for consumers
// that run a command to get a token (credential_process). Nothing is
// written to disk; logs go to stderr.
func fetchJWT(f *commonFlags, cfg *agent.Config, log *slog.Logger, stdout, stderr io.Writer) int {
	if f.jwtFormat != "token" && f.jwtFormat != "json" {
		fmt.Fprintf(stderr, "svidagent fetch: -format %q: use token or json\n", f.jwtFormat)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg.DaemonMode = false
	a := agent.New(cfg, agent.WithLogger(log), agent.WithVersion(versionString()))
	svid, err := a.FetchJWT(ctx, f.jwtSVID, f.jwtAudiences)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent fetch: %v\n", err)
		return exitRuntime
	}
	if f.jwtFormat == "token" {
		fmt.Fprintln(stdout, svid.Marshal())
		return exitOK
	}
	out, _ := json.Marshal(struct {
		SPIFFEID  string    `json:"spiffe_id"`
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Audience  []string  `json:"audience"`
	}{svid.ID.String(), svid.Marshal(), svid.Expiry.UTC(), svid.Audience})
	fmt.Fprintln(stdout, string(out))
	return exitOK
}
