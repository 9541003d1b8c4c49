package dev

import (
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
)

// Validate checks the trust domain and the lifetimes. It returns
// hostapi.FieldErrors.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

// parsed is a validated Config.
type parsed struct {
	td    spiffeid.TrustDomain
	ttl   time.Duration
	caTTL time.Duration
}

func (c *Config) parse() (parsed, error) {
	var (
		p    parsed
		errs hostapi.FieldErrors
		err  error
	)
	if p.td, err = spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		errs.Add("trust_domain", fmt.Sprintf("%q is not a valid trust domain (%v); use a lowercase DNS-like name such as \"example.org\"", c.TrustDomain, err))
	}
	p.ttl, err = parseDuration(c.TTL)
	if err != nil {
		errs.Add("ttl", err.Error())
	}
	caOK := true
	p.caTTL, err = parseDuration(c.CATTL)
	if err != nil {
		errs.Add("ca_ttl", err.Error())
		caOK = false
	}
	if caOK && p.ttl > 0 && p.caTTL <= p.ttl {
		errs.Add("ca_ttl", fmt.Sprintf("ca_ttl %s must be longer than ttl %s; raise ca_ttl (default \"24h\") or lower ttl", p.caTTL, p.ttl))
	}
	return p, errs.Err()
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write it like \"1m\", \"90s\" or \"24h\"", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not positive; write a positive duration like \"1m\"", s)
	}
	return d, nil
}
