package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/svidagent/svidagent/hostapi"
)

// FetchJWT asks the issuer of the svid block named svid (the first block
// when svid is empty) for one JWT-SVID for audiences, and returns it. No
// writer runs and no notifier is told: nothing is written anywhere, for
// consumers that take a token on standard output (credential_process).
// A failed request is retried with backoff within the config's
// fetch_timeout (default 30s).
func (a *Agent) FetchJWT(ctx context.Context, svid string, audiences []string) (*jwtsvid.SVID, error) {
	if len(audiences) == 0 || audiences[0] == "" {
		return nil, errors.New("fetching a JWT-SVID: no audience; give the service the token is presented to")
	}
	b, runners, err := a.buildOnce(ctx, "fetching a JWT-SVID", false)
	if err != nil {
		return nil, err
	}
	defer a.closePlugins()
	var r *svidRunner
	for _, c := range runners {
		if svid == "" || c.cfg.Name == svid {
			r = c
			break
		}
	}
	if r == nil {
		if svid == "" {
			return nil, errors.New("fetching a JWT-SVID: the configuration has no svid block")
		}
		return nil, fmt.Errorf("fetching a JWT-SVID: no svid block named %q", svid)
	}
	if err := a.startPlugins(ctx, b.all); err != nil {
		return nil, err
	}
	timeout := a.cfg.FetchTimeout
	if timeout <= 0 {
		timeout = 30e9
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := &hostapi.IssueRequest{SPIFFEID: r.id, JWT: []hostapi.JWTRequest{{
		Audience: audiences[0], ExtraAudiences: audiences[1:], FileName: "stdout",
	}}}
	bo := backoff{min: a.retryMin, max: a.retryMax}
	for {
		creds, err := r.issuer.Issue(ctx, req)
		if err == nil {
			if len(creds.JWTSVIDs) == 0 || creds.JWTSVIDs[0].SVID == nil {
				err = errors.New("the issuer returned no JWT-SVID")
			} else {
				return creds.JWTSVIDs[0].SVID, nil
			}
		}
		a.log.Warn("fetching a JWT-SVID failed; retrying", "svid", r.cfg.Name, "error", err)
		if !sleepCtx(ctx, bo.next()) {
			return nil, fmt.Errorf("fetching a JWT-SVID for svid %q within %v: %w", r.cfg.Name, timeout, err)
		}
	}
}
