// Package sdkbugs holds SDK plugins with one deliberate bug each, for the
// conformance suite's own tests: each must fail one named check. They run
// in-process (conformance.Target.NewImpl); cmd/acceptall serves one of
// them as a go-plugin subprocess for the CLI's test.
package sdkbugs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
)

// AcceptAll is a notifier whose Validate accepts everything.
type AcceptAll struct{}

func (AcceptAll) Validate([]byte) hostapi.FieldErrors                  { return nil }
func (AcceptAll) Configure(context.Context, []byte) error              { return nil }
func (AcceptAll) Notify(context.Context, *hostapi.RotationEvent) error { return nil }

// IgnoresUnknown is a notifier whose Validate checks the attribute it
// knows and ignores any other: a typo in a config block goes unnoticed.
type IgnoresUnknown struct{}

func (IgnoresUnknown) Validate(b []byte) hostapi.FieldErrors {
	var c struct {
		Message string `json:"message"`
	}
	var es hostapi.FieldErrors
	if err := json.Unmarshal(b, &c); err != nil { // the bug: no DisallowUnknownFields
		es.Add("", err.Error())
	} else if c.Message == "" {
		es.Add("message", "is required")
	}
	return es
}

func (n IgnoresUnknown) Configure(_ context.Context, b []byte) error {
	if es := n.Validate(b); len(es) > 0 {
		return es
	}
	return nil
}

func (IgnoresUnknown) Notify(context.Context, *hostapi.RotationEvent) error { return nil }

// NoConfig is a notifier that takes no config and does nothing. It is
// not broken itself: fixture badexample gives it an example config in
// its Info that is not a JSON object.
type NoConfig struct{}

func (NoConfig) Notify(context.Context, *hostapi.RotationEvent) error { return nil }

// NonIdempotent is a notifier whose second Configure fails.
type NonIdempotent struct {
	mu         sync.Mutex
	configured bool
}

func (*NonIdempotent) Validate(b []byte) hostapi.FieldErrors { return onlyEmpty(b) }

func (n *NonIdempotent) Configure(context.Context, []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.configured {
		return errors.New("already configured")
	}
	n.configured = true
	return nil
}

func (*NonIdempotent) Notify(context.Context, *hostapi.RotationEvent) error { return nil }

func onlyEmpty(b []byte) hostapi.FieldErrors {
	var m map[string]any
	var es hostapi.FieldErrors
	if err := json.Unmarshal(b, &m); err != nil || len(m) > 0 {
		es.Add("", "this plugin takes no configuration")
	}
	return es
}

// dirConfig is the writers' config.
type dirConfig struct {
	Dir string `json:"dir"`
}

type dirWriter struct {
	mu  sync.Mutex
	dir string
}

func (w *dirWriter) Validate(b []byte) hostapi.FieldErrors {
	var c dirConfig
	var es hostapi.FieldErrors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		es.Add("", err.Error())
	} else if c.Dir == "" {
		es.Add("dir", "is required")
	}
	return es
}

func (w *dirWriter) Configure(_ context.Context, b []byte) error {
	var c dirConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	w.mu.Lock()
	w.dir = c.Dir
	w.mu.Unlock()
	return nil
}

func pemFiles(set *hostapi.CredentialSet) (cert, key []byte, err error) {
	s := set.X509SVIDs[0]
	for _, c := range s.Certificates {
		cert = append(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Torn is a writer that rewrites its files in place: truncate, then write
// in two halves. A concurrent reader sees partial files.
type Torn struct{ dirWriter }

func (w *Torn) Write(_ context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	cert, key, err := pemFiles(set)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var paths []string
	for _, f := range []struct {
		name string
		data []byte
	}{{"svid.pem", cert}, {"svid_key.pem", key}} {
		p := filepath.Join(w.dir, f.name)
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		half := len(f.data) / 2
		_, err = fh.Write(f.data[:half])
		time.Sleep(time.Millisecond) // the bug, made visible: a reader gets in here
		if err == nil {
			_, err = fh.Write(f.data[half:])
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return &hostapi.WriteResult{Paths: paths}, nil
}

// WorldReadableKey is a writer that writes its key file with mode 0644.
type WorldReadableKey struct{ dirWriter }

func (w *WorldReadableKey) Write(_ context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	cert, key, err := pemFiles(set)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var paths []string
	for _, f := range []struct {
		name string
		data []byte
	}{{"svid.pem", cert}, {"svid_key.pem", key}} {
		p := filepath.Join(w.dir, f.name)
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o644); err != nil {
			return nil, err
		}
		if err := os.Chmod(tmp, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return &hostapi.WriteResult{Paths: paths}, nil
}

// WrongID is an issuer that signs the CSR but for another SPIFFE ID.
type WrongID struct{}

func (WrongID) Issue(_ context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	td := req.SPIFFEID.TrustDomain()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), URIs: []*url.URL{td.ID().URL()}, NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	other, err := spiffeid.FromPath(td, "/someone-else")
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), URIs: []*url.URL{other.URL()}, NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(req.TTL), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return &hostapi.Credentials{
		X509SVIDs:   []*x509svid.SVID{{ID: other, Certificates: []*x509.Certificate{leaf}}},
		X509Bundles: x509bundle.NewSet(x509bundle.FromX509Authorities(td, []*x509.Certificate{ca})),
	}, nil
}
