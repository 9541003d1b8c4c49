package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/svidagent/svidagent/hostapi"
)

// config is the plugin's config {} block.
type config struct {
	// Address is Vault's address, e.g. "https://vault.example.com:8200".
	// Required.
	Address string `json:"address"`
	// Token is the Vault token. Exactly one of token and token_file.
	Token string `json:"token"`
	// TokenFile holds the Vault token (read at each Configure; surrounding
	// white space is ignored).
	TokenFile string `json:"token_file"`
	// Mount is the PKI secrets engine's mount path. Default: "pki".
	Mount string `json:"mount"`
	// Role is the PKI role that signs. Required. It must allow the SPIFFE
	// IDs as URI SANs and set require_cn=false.
	Role string `json:"role"`
	// TTL is the certificate lifetime asked for when the svid block sets
	// none. Default: the role's TTL.
	TTL string `json:"ttl"`
	// CACert is a PEM file of CAs to verify Vault's TLS certificate with.
	// Default: the system roots.
	CACert string `json:"ca_cert"`
	// Namespace is the Vault Enterprise namespace. Default: none.
	Namespace string `json:"namespace"`

	ttl time.Duration
}

// parseConfig decodes b strictly and reports every problem against its
// field. It reads token_file.
func parseConfig(b []byte) (config, hostapi.FieldErrors) {
	var (
		c   config
		es  hostapi.FieldErrors
		raw map[string]json.RawMessage
	)
	if err := json.Unmarshal(b, &raw); err != nil {
		es.Add("", "the config must be a JSON object: "+err.Error())
		return c, es
	}
	fields := map[string]*string{
		"address": &c.Address, "token": &c.Token, "token_file": &c.TokenFile, "mount": &c.Mount,
		"role": &c.Role, "ttl": &c.TTL, "ca_cert": &c.CACert, "namespace": &c.Namespace,
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := fields[k]
		if !ok {
			es.Add(k, "unknown attribute; the vault PKI issuer takes address, token, token_file, mount, role, ttl, ca_cert and namespace")
			continue
		}
		if err := json.Unmarshal(raw[k], p); err != nil {
			es.Add(k, "must be a string")
		}
	}
	if c.Address == "" {
		es.Add("address", `required: Vault's address, e.g. "https://vault.example.com:8200"`)
	} else if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		es.Add("address", fmt.Sprintf("%q is not an http(s) URL with a host", c.Address))
	}
	switch {
	case c.Token != "" && c.TokenFile != "":
		es.Add("token_file", "set token or token_file, not both")
	case c.Token == "" && c.TokenFile == "":
		es.Add("token", "required: the Vault token, or token_file naming a file that holds it")
	case c.TokenFile != "":
		tb, err := os.ReadFile(c.TokenFile)
		if err != nil {
			es.Add("token_file", "reading the token: "+err.Error())
		} else if c.Token = strings.TrimSpace(string(tb)); c.Token == "" {
			es.Add("token_file", fmt.Sprintf("%s is empty", c.TokenFile))
		}
	}
	if c.Mount == "" {
		c.Mount = "pki"
	}
	c.Mount = strings.Trim(c.Mount, "/")
	if c.Role == "" {
		es.Add("role", "required: the PKI role that signs the SVIDs")
	} else if strings.Contains(c.Role, "/") {
		es.Add("role", "a role name has no /")
	}
	if c.TTL != "" {
		d, err := time.ParseDuration(c.TTL)
		if err != nil || d <= 0 {
			es.Add("ttl", fmt.Sprintf("%q is not a positive duration such as \"1h\"", c.TTL))
		}
		c.ttl = d
	}
	if c.CACert != "" {
		if _, err := os.Stat(c.CACert); err != nil {
			es.Add("ca_cert", err.Error())
		}
	}
	return c, es
}
