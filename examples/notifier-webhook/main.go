// Command notifier-webhook is a svidagent notifier plugin that POSTs each
// rotation event, as JSON, to a URL through the agent's HTTP host service.
// It is built with sdk/notifier: the same source builds as a WebAssembly
// module (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) and as a
// go-plugin executable (go build).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/svidagent/svidagent/sdk/notifier"
)

// info is the plugin's answer to Describe.
var info = notifier.Info{Name: "notifier-webhook", Version: "0.1.0"}

// In a WebAssembly module init runs in _initialize and main never runs;
// built for the machine, main serves the plugin over go-plugin.
func init() { notifier.Serve(info, newWebhook()) }

func main() { notifier.Main() }

// config is the plugin's config {} block.
type config struct {
	// URL receives the POST. Required; http or https. Its host must be in
	// the plugin's allow { hosts = [...] }.
	URL string `json:"url"`
	// Headers are added to every request, e.g. an authentication token.
	Headers map[string]string `json:"headers"`
}

// webhook is the plugin.
type webhook struct {
	mu  sync.RWMutex
	cfg config
}

var (
	_ notifier.Notifier   = (*webhook)(nil)
	_ notifier.Configurer = (*webhook)(nil)
)

func newWebhook() *webhook { return &webhook{} }

// parseConfig decodes b strictly and reports every problem against its
// field.
func parseConfig(b []byte) (config, notifier.FieldErrors) {
	var (
		c    config
		es   notifier.FieldErrors
		raw  map[string]json.RawMessage
		keys []string
	)
	if err := json.Unmarshal(b, &raw); err != nil {
		es.Add("", "the config must be a JSON object: "+err.Error())
		return c, es
	}
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		switch k {
		case "url":
			if err := json.Unmarshal(v, &c.URL); err != nil {
				es.Add("url", "must be a string")
			}
		case "headers":
			var hs map[string]json.RawMessage
			if err := json.Unmarshal(v, &hs); err != nil {
				es.Add("headers", "must be a map of header names to strings")
				continue
			}
			c.Headers = map[string]string{}
			for name, hv := range hs {
				var s string
				if err := json.Unmarshal(hv, &s); err != nil {
					es.Add("headers."+name, "must be a string")
					continue
				}
				c.Headers[name] = s
			}
		default:
			es.Add(k, "unknown attribute; the webhook notifier takes url and headers")
		}
	}
	if _, ok := raw["url"]; !ok {
		es.Add("url", `required: the URL to POST rotation events to, e.g. "https://hooks.example.com/svid"`)
	} else if c.URL != "" || len(es) == 0 {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			es.Add("url", "not a URL: "+err.Error())
		case u.Scheme != "http" && u.Scheme != "https":
			es.Add("url", fmt.Sprintf("scheme %q is not supported; use http or https", u.Scheme))
		case u.Host == "":
			es.Add("url", "has no host")
		}
	}
	return c, es
}

// Validate implements notifier.Configurer.
func (w *webhook) Validate(b []byte) notifier.FieldErrors {
	_, es := parseConfig(b)
	return es
}

// Configure implements notifier.Configurer.
func (w *webhook) Configure(_ context.Context, b []byte) error {
	c, es := parseConfig(b)
	if len(es) > 0 {
		return es
	}
	w.mu.Lock()
	w.cfg = c
	w.mu.Unlock()
	return nil
}

// event is the JSON body of a POST.
type event struct {
	Name    string   `json:"name"`
	Reason  string   `json:"reason"`
	Initial bool     `json:"initial"`
	Time    string   `json:"time"`
	X509    []x509ID `json:"x509"`
	JWT     []jwtID  `json:"jwt"`
	Paths   []string `json:"paths"`
}

type x509ID struct {
	SPIFFEID string `json:"spiffe_id"`
	Serial   string `json:"serial"`
	NotAfter string `json:"not_after"`
}

type jwtID struct {
	SPIFFEID  string   `json:"spiffe_id"`
	Audiences []string `json:"audiences"`
	Expiry    string   `json:"expiry"`
	FileName  string   `json:"file_name"`
}

func toEvent(ev *notifier.Event) event {
	e := event{Name: ev.Name, Reason: ev.Reason.String(), Initial: ev.Initial, Time: ev.Time.UTC().Format(time.RFC3339Nano),
		X509: []x509ID{}, JWT: []jwtID{}, Paths: ev.Paths}
	if e.Paths == nil {
		e.Paths = []string{}
	}
	for _, x := range ev.X509 {
		e.X509 = append(e.X509, x509ID{SPIFFEID: x.SPIFFEID, Serial: x.Serial, NotAfter: x.NotAfter.UTC().Format(time.RFC3339)})
	}
	for _, j := range ev.JWT {
		e.JWT = append(e.JWT, jwtID{SPIFFEID: j.SPIFFEID, Audiences: j.Audiences, Expiry: j.Expiry.UTC().Format(time.RFC3339), FileName: j.FileName})
	}
	return e
}

// maxErrorBody bounds how much of an error response is quoted.
const maxErrorBody = 200

// Notify implements notifier.Notifier: it POSTs the event through the
// host's HTTP service and fails on a non-2xx answer.
func (w *webhook) Notify(ctx context.Context, ev *notifier.Event) error {
	w.mu.RLock()
	cfg := w.cfg
	w.mu.RUnlock()
	body, err := json.Marshal(toEvent(ev))
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	req := &notifier.HTTPRequest{Method: "POST", URL: cfg.URL, Header: notifier.Header{}, Body: body}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := notifier.HTTP(ctx, req)
	if errors.Is(err, notifier.ErrNotAllowed) {
		return notifier.Errorf(notifier.CodePermissionDenied, "posting to %s: %w; add its host to the plugin's allow { hosts = [...] }", cfg.URL, err)
	}
	if err != nil {
		return fmt.Errorf("posting to %s: %w", cfg.URL, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := resp.Body
		if len(snippet) > maxErrorBody {
			snippet = snippet[:maxErrorBody]
		}
		code := notifier.CodeUnknown
		if resp.StatusCode >= 500 || resp.StatusCode == 429 { // 429: Too Many Requests
			code = notifier.CodeUnavailable
		}
		return notifier.Errorf(code, "posting to %s: status %d: %s", cfg.URL, resp.StatusCode, bytes.TrimSpace(snippet))
	}
	notifier.Log(ctx, notifier.LevelDebug, "posted rotation event", "name", ev.Name, "status", resp.StatusCode)
	return nil
}
