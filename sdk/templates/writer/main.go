// Command writer is a starter for a svidagent writer plugin: copy this
// directory, rename the plugin in info, and change what Write renders. It
// writes the default X509-SVID's chain (svid.pem) and its private key
// (svid_key.pem, mode 0600) as PEM, each replaced atomically: a temporary
// file in the same directory, then a rename. The same source builds as a
// WebAssembly module, which writes under /out (the plugin block's
// allow { write_dir }), and as a go-plugin subprocess, which writes under
// its config's dir:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o writer.wasm .
//	go build -o writer .
//
// conformance_test.go runs the conformance suite over it.
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// info is the plugin's answer to Describe. exampleConfig (serve_*.go) is
// what `svidagent conformance -plugin writer.wasm` runs with when given no
// -config.
var info = sdk.Info{Name: "writer-template", Version: "0.1.0", ExampleConfigJSON: exampleConfig}

// The files the writer delivers and their modes. In WASM every file is
// created 0600 (WASI has no chmod), so svid.pem is 0600 there too.
const (
	certFile                 = "svid.pem"
	keyFile                  = "svid_key.pem"
	certMode     fs.FileMode = 0o644
	keyMode      fs.FileMode = 0o600
	dirMode      fs.FileMode = 0o755
	maxPathBytes             = 4096
)

// config is the plugin's config {} block, as JSON.
type config struct {
	// Dir is the absolute directory the files are written to. Default:
	// /out in WASM; required for a go-plugin subprocess.
	Dir string `json:"dir"`
}

type writer struct {
	cfgMu sync.RWMutex
	cfg   config
	// writeMu serialises Write, so that two concurrent writes cannot
	// interleave their renames and leave the chain of one next to the key
	// of the other.
	writeMu sync.Mutex
}

var (
	_ hostapi.Writer = (*writer)(nil)
	_ sdk.Configurer = (*writer)(nil)
)

func parse(b []byte) (config, hostapi.FieldErrors) {
	c := config{Dir: defaultDir}
	var es hostapi.FieldErrors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		es.Add("", "the config must be a JSON object with dir: "+err.Error())
		return c, es
	}
	switch {
	case c.Dir == "":
		es.Add("dir", `is required, e.g. "/run/svidagent/web"`)
	case !filepath.IsAbs(c.Dir):
		es.Add("dir", fmt.Sprintf("must be an absolute path, not %q", c.Dir))
	case len(c.Dir) > maxPathBytes:
		es.Add("dir", fmt.Sprintf("is %d bytes long; at most %d", len(c.Dir), maxPathBytes))
	}
	return c, es
}

// Validate implements sdk.Configurer.
func (w *writer) Validate(b []byte) hostapi.FieldErrors { _, es := parse(b); return es }

// Configure implements sdk.Configurer. It may be called again with a new
// config and must then behave as if only the new one was applied.
func (w *writer) Configure(_ context.Context, b []byte) error {
	c, es := parse(b)
	if len(es) > 0 {
		return es
	}
	w.cfgMu.Lock()
	w.cfg = c
	w.cfgMu.Unlock()
	return nil
}

// Write implements hostapi.Writer. It is the only kind of plugin that sees
// private keys. It delivers everything on every call (a writer may skip
// parts that set.Changed says are unchanged), leaves a file whose content
// is already right untouched, and reports the paths in a stable order.
func (w *writer) Write(_ context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	w.cfgMu.RLock()
	dir := w.cfg.Dir
	w.cfgMu.RUnlock()
	if len(set.X509SVIDs) == 0 {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "writing svid %q: the set has no X509-SVID; this writer delivers X509-SVIDs only", set.Name)
	}
	svid := set.X509SVIDs[0]
	if len(svid.Certificates) == 0 || svid.PrivateKey == nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "writing svid %q: the X509-SVID has no certificate or no private key", set.Name)
	}
	var chain bytes.Buffer
	for _, c := range svid.Certificates {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	der, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInvalidArgument, "writing svid %q: encoding the private key: %w", set.Name, err)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "writing svid %q: creating %s: %w", set.Name, dir, err)
	}
	// The key first: a consumer that reloads on the chain's change then
	// finds the new key already in place.
	files := []struct {
		name string
		b    []byte
		mode fs.FileMode
	}{{keyFile, key, keyMode}, {certFile, chain.Bytes(), certMode}}
	paths := make([]string, 0, len(files))
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := replace(p, f.b, f.mode); err != nil {
			return nil, sdk.Errorf(sdk.CodeUnavailable, "writing svid %q: %w", set.Name, err)
		}
		paths = append(paths, p)
	}
	return &hostapi.WriteResult{Paths: paths}, nil
}

// replace writes b to name atomically: a temporary file in the same
// directory, synced, then renamed over name (WASI's path_rename in WASM).
// A reader sees the old file or the new one, never a part. A file that
// already holds b with the right mode is left alone, so that writing the
// same set twice changes nothing, not even the file's modification time.
// (In WASM, where files are 0600, a 0644 file is rewritten with the same
// bytes.)
func replace(name string, b []byte, mode fs.FileMode) (err error) {
	if fi, err := os.Stat(name); err == nil && fi.Mode().Perm() == mode {
		if old, err := os.ReadFile(name); err == nil && bytes.Equal(old, b) {
			return nil
		}
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating a temporary file for %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	// CreateTemp made the file 0600; in WASM Chmod changes nothing.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("replacing %s: %w", name, err)
	}
	return nil
}
