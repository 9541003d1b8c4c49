package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	hostv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/host/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxBodyBytes is the default cap on an HTTP response body.
const DefaultMaxBodyBytes = 4 << 20

// maxRedirects bounds a redirect chain, as net/http's default policy does.
const maxRedirects = 10

// HTTPConfig configures an [HTTP] service.
type HTTPConfig struct {
	// AllowHosts are the hosts a plugin may reach. An entry is a host name
	// or IP literal ("hooks.example.com", "10.0.0.7", "[::1]"), which
	// allows every port; a host and port ("hooks.example.com:8443"), which
	// allows that port only; or a suffix wildcard ("*.example.com",
	// optionally with a port), which allows every name ending in
	// ".example.com" but not example.com itself and never an IP literal.
	// Names compare case-insensitively. Empty allows nothing. A name
	// that resolves to a loopback, link-local, unspecified or multicast
	// address is refused unless an entry names that IP literally.
	AllowHosts []string
	// MaxBodyBytes caps the response body; a longer body fails the request
	// with RESOURCE_EXHAUSTED. Default: [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// MaxTimeout bounds a request's timeout when neither the request nor
	// the context sets a shorter one. Default: 30s.
	MaxTimeout time.Duration
	// Transport, if set, is cloned as the base transport (tests use it to
	// trust a test server's certificate); its Proxy and DialContext are
	// replaced. Default: a clone of http.DefaultTransport.
	Transport *http.Transport
}

type hostRule struct {
	host     string // lowercase; for a wildcard, the suffix with its leading dot
	port     string // empty: any port
	wildcard bool
}

// HTTP is the svidagent.host.v1.HTTP service: it makes HTTP requests on a
// plugin's behalf to allowed hosts only. It checks the host before any
// connection is made (and again at dial time and on every redirect),
// resolves names itself and dials only addresses it checked (a loopback,
// link-local, unspecified or multicast address needs an allow entry naming
// it literally), uses no proxy from the environment, and caps the response
// body. HTTP is safe for concurrent use.
type HTTP struct {
	hostv1.UnimplementedHTTPServer

	rules      []hostRule
	maxBody    int64
	maxTimeout time.Duration
	client     *http.Client
	// lookup resolves a host name to the addresses dialled; tests map
	// names to loopback through it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewHTTP returns an HTTP service for cfg. It fails on a malformed
// AllowHosts entry.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	h := &HTTP{maxBody: cfg.MaxBodyBytes, maxTimeout: cfg.MaxTimeout,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.maxTimeout <= 0 {
		h.maxTimeout = 30 * time.Second
	}
	for _, e := range cfg.AllowHosts {
		r, err := parseRule(e)
		if err != nil {
			return nil, fmt.Errorf("parsing allowed host %q: %w", e, err)
		}
		h.rules = append(h.rules, r)
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	} else {
		tr = tr.Clone()
	}
	tr.Proxy = nil // no ambient proxy: the allowlist names the real peer
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if !h.allowed(host, port) {
			return nil, &notAllowedError{fmt.Sprintf("host %q is not allowed", addr)}
		}
		// Resolve here and dial the very addresses checked: the name was
		// allowed, each address it resolves to must be too.
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else if addrs, err = h.lookup(ctx, host); err != nil {
			return nil, err
		}
		var errs []error
		for i, a := range addrs {
			if err := h.allowedAddr(host, a, port); err != nil {
				errs = append(errs, err)
				continue
			}
			c, err := dialPart(ctx, dialer, network, net.JoinHostPort(a.Unmap().String(), port), len(addrs)-i)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("resolving %q: no addresses", host)
		}
		return nil, errors.Join(errs...)
	}
	h.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if err := h.check(req.URL); err != nil {
				return err
			}
			return nil
		},
	}
	return h, nil
}

func parseRule(e string) (hostRule, error) {
	e = strings.ToLower(strings.TrimSpace(e))
	if e == "" {
		return hostRule{}, errors.New("empty host")
	}
	if strings.Contains(e, "/") {
		return hostRule{}, errors.New("want a host or host:port, not a URL")
	}
	host, port := e, ""
	if h, p, err := net.SplitHostPort(e); err == nil {
		host, port = h, p
		if p == "" {
			return hostRule{}, errors.New("empty port")
		}
	} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		host = e[1 : len(e)-1]
	}
	host = strings.TrimSuffix(host, ".")
	r := hostRule{host: host, port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if rest == "" || strings.Contains(rest, "*") {
			return hostRule{}, errors.New("a wildcard needs a domain after \"*.\"")
		}
		r.host, r.wildcard = "."+rest, true
	} else if strings.Contains(host, "*") {
		return hostRule{}, errors.New("a wildcard is allowed only as a leading \"*.\"")
	}
	return r, nil
}

// allowed reports whether host (without brackets) and port are allowed.
func (h *HTTP) allowed(host, port string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	ip := net.ParseIP(host) != nil
	for _, r := range h.rules {
		if r.port != "" && r.port != port {
			continue
		}
		if r.wildcard {
			if !ip && strings.HasSuffix(host, r.host) {
				return true
			}
			continue
		}
		if r.host == host {
			return true
		}
		if ip && net.ParseIP(r.host) != nil && net.ParseIP(r.host).Equal(net.ParseIP(host)) {
			return true
		}
	}
	return false
}

// dialPart dials addr with its share of ctx's remaining time when left
// addresses, this one included, are still to try, as net.Dialer does for
// the addresses of a name: one that does not answer leaves time for the
// next. The share is at least 2s.
func dialPart(ctx context.Context, d *net.Dialer, network, addr string, left int) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok && left > 1 {
		share := max(time.Until(dl)/time.Duration(left), 2*time.Second)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	return d.DialContext(ctx, network, addr)
}

// notAllowedError is a dial refused by the allow-list; Request answers it
// with PERMISSION_DENIED.
type notAllowedError struct{ msg string }

func (e *notAllowedError) Error() string {
	return e.msg + "; add it to allow { hosts = [...] } in the plugin's config"
}

// internalAddr names the class of a, unmapped, when it is one a plugin
// reaches only through an allow entry naming it literally: loopback,
// link-local (169.254.0.0/16, fe80::/10, which hold cloud metadata
// services), unspecified (and 0.0.0.0/8) or multicast.
func internalAddr(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsUnspecified(), a.Is4() && a.As4()[0] == 0:
		return "unspecified"
	case a.IsMulticast():
		return "multicast"
	}
	return ""
}

// allowedAddr checks an address host resolved to (or host itself, an IP
// literal): an internal address (see internalAddr) must be named
// literally by an allow entry, with port if the entry has one.
func (h *HTTP) allowedAddr(host string, a netip.Addr, port string) error {
	class := internalAddr(a)
	if class == "" {
		return nil
	}
	a = a.Unmap()
	for _, r := range h.rules {
		if r.wildcard || (r.port != "" && r.port != port) {
			continue
		}
		if ra, err := netip.ParseAddr(r.host); err == nil && ra.Unmap() == a {
			return nil
		}
	}
	return &notAllowedError{fmt.Sprintf("host %q resolves to %s, a %s address, which is reached only when an entry names it literally", host, a, class)}
}

// check returns a status error unless u is an allowed http(s) URL.
func (h *HTTP) check(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return status.Errorf(codes.InvalidArgument, "url %q: scheme %q is not allowed; use http or https", u.Redacted(), u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return status.Errorf(codes.InvalidArgument, "url %q has no host", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if !h.allowed(host, port) {
		return status.Errorf(codes.PermissionDenied,
			"host %q is not allowed; add it to allow { hosts = [...] } in the plugin's config", net.JoinHostPort(host, port))
	}
	return nil
}

// Request implements hostv1.HTTPServer.
func (h *HTTP) Request(ctx context.Context, req *hostv1.HTTPRequest) (*hostv1.HTTPResponse, error) {
	u, err := url.Parse(req.GetUrl())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "parsing url: %v", err)
	}
	if err := h.check(u); err != nil {
		return nil, err
	}
	timeout := h.maxTimeout
	if ms := req.GetTimeoutMs(); ms > 0 && time.Duration(ms)*time.Millisecond < timeout {
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	method := req.GetMethod()
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if len(req.GetBody()) > 0 {
		body = bytes.NewReader(req.GetBody())
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "making request: %v", err)
	}
	for _, hd := range req.GetHeaders() {
		hreq.Header.Add(hd.GetName(), hd.GetValue())
	}
	resp, err := h.client.Do(hreq)
	if err != nil {
		if s, ok := status.FromError(errors.Unwrap(err)); ok && s.Code() != codes.Unknown {
			return nil, s.Err() // a refused redirect
		}
		if na := (*notAllowedError)(nil); errors.As(err, &na) {
			return nil, status.Errorf(codes.PermissionDenied, "requesting %s: %v", u.Redacted(), na)
		}
		if ctx.Err() != nil {
			return nil, status.Errorf(codes.DeadlineExceeded, "requesting %s: %v", u.Redacted(), err)
		}
		return nil, status.Errorf(codes.Unavailable, "requesting %s: %v", u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, h.maxBody+1))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading response from %s: %v", u.Redacted(), err)
	}
	if int64(len(b)) > h.maxBody {
		return nil, status.Errorf(codes.ResourceExhausted, "response from %s exceeds %d bytes", u.Redacted(), h.maxBody)
	}
	out := &hostv1.HTTPResponse{Status: int32(resp.StatusCode), Body: b}
	for name, vs := range resp.Header {
		for _, v := range vs {
			out.Headers = append(out.Headers, &hostv1.Header{Name: name, Value: v})
		}
	}
	return out, nil
}

// Close closes the idle connections of the service's transport. The
// service remains usable.
func (h *HTTP) Close() { h.client.CloseIdleConnections() }
