// Command writer-pkcs12 is a svidagent writer plugin that delivers the
// default X509-SVID as a PKCS#12 keystore (key, leaf and intermediates) and
// the trust bundles as a PKCS#12 trust store, for Java and other PKCS#12
// consumers. The same source builds as a WebAssembly module (GOOS=wasip1,
// see serve_wasm.go), which writes into the output directory the agent
// preopens as /out, and as a go-plugin subprocess (see serve_plugin.go),
// which writes into its configured dir.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
	"software.sslmate.com/src/go-pkcs12"
)

// info is the plugin's answer to Describe.
var info = sdk.Info{Name: "writer-pkcs12", Version: "0.1.0"}

// Defaults of [config].
const (
	wasmDir           = "/out"
	defaultKeystore   = "keystore.p12"
	defaultTruststore = "truststore.p12"
	// fileMode is the mode of both files. It is not configurable: the
	// WASM runtime creates files 0600 and WASI has no chmod, and a
	// keystore is a secret either way.
	fileMode fs.FileMode = 0o600
)

// config is the plugin's config {} block.
type config struct {
	// Dir is where the files are written. WASM: /out (the default) or a
	// directory under it; subprocess: required, absolute. Created 0700 if
	// missing.
	Dir string `json:"dir"`
	// Password protects both files. Exactly one of Password and
	// PasswordFile is required.
	Password string `json:"password"`
	// PasswordFile holds the password (one line; a trailing newline is
	// ignored). Subprocess only: a WASM plugin can read no file outside
	// its output directory. Read at every Configure.
	PasswordFile string `json:"password_file"`
	// Keystore is the keystore's file name. Default: keystore.p12.
	Keystore string `json:"keystore"`
	// Truststore is the trust store's file name. Default: truststore.p12.
	Truststore string `json:"truststore"`
}

// parseConfig decodes b strictly, applies defaults and reports every
// problem against its field. It reads no file.
func parseConfig(b []byte) (config, hostapi.FieldErrors) {
	var (
		c   config
		es  hostapi.FieldErrors
		raw map[string]json.RawMessage
	)
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		es.Add("", "the config must be a JSON object")
		return c, es
	}
	fields := map[string]*string{"dir": &c.Dir, "password": &c.Password, "password_file": &c.PasswordFile,
		"keystore": &c.Keystore, "truststore": &c.Truststore}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst, ok := fields[k]
		if !ok {
			es.Add(k, "unknown attribute; writer-pkcs12 takes dir, password, password_file, keystore and truststore")
			continue
		}
		if err := json.Unmarshal(raw[k], dst); err != nil {
			es.Add(k, "must be a string")
		}
	}

	switch {
	case inWASM && c.Dir == "":
		c.Dir = wasmDir
	case inWASM && c.Dir != wasmDir && !strings.HasPrefix(path.Clean(c.Dir), wasmDir+"/"):
		es.Add("dir", fmt.Sprintf("%q is outside /out: a WASM writer can write only into the directory the agent preopens as /out (the plugin block's allow { write_dir }); leave dir unset", c.Dir))
	case !inWASM && c.Dir == "":
		es.Add("dir", `required: the directory to write the keystore into, e.g. "/run/svid/java"`)
	case !inWASM && !filepath.IsAbs(c.Dir):
		es.Add("dir", fmt.Sprintf("%q is not an absolute path", c.Dir))
	}

	switch {
	case c.Password != "" && c.PasswordFile != "":
		es.Add("password_file", "set either password or password_file, not both")
	case c.PasswordFile != "" && inWASM:
		es.Add("password_file", "a WASM plugin cannot read files outside /out; set password, or run writer-pkcs12 as a subprocess (command = ...)")
	case c.PasswordFile != "" && !filepath.IsAbs(c.PasswordFile):
		es.Add("password_file", fmt.Sprintf("%q is not an absolute path", c.PasswordFile))
	case c.Password == "" && c.PasswordFile == "" && raw["password"] == nil:
		es.Add("password", "required (or password_file, for a subprocess): Java refuses keystores without a password")
	case c.Password == "" && c.PasswordFile == "":
		es.Add("password", "must not be empty: Java refuses keystores without a password")
	}

	if c.Keystore == "" {
		c.Keystore = defaultKeystore
	}
	if c.Truststore == "" {
		c.Truststore = defaultTruststore
	}
	for _, f := range []struct{ field, name string }{{"keystore", c.Keystore}, {"truststore", c.Truststore}} {
		if f.name == "." || f.name == ".." || strings.ContainsAny(f.name, `/\`) {
			es.Add(f.field, fmt.Sprintf("%q is not a file name: the file goes into dir", f.name))
		}
	}
	if c.Keystore == c.Truststore {
		es.Add("truststore", fmt.Sprintf("%q is also the keystore's name", c.Truststore))
	}
	return c, es
}

// writer is the plugin. mu serialises Configure and Write: a Write never
// sees half a config, and two Writes never race on the same files.
type writer struct {
	mu       sync.Mutex
	cfg      config
	password string
	// last is what this instance last wrote or found current, by path;
	// it spares re-decoding a file to learn that it is up to date (in
	// WASM a PKCS#12 decode costs about 100 ms of PBKDF2). A fresh
	// instance starts empty and decodes once.
	last map[string]written
}

// written fingerprints a file: the inputs it was encoded from (password
// included) and its bytes.
type written struct{ input, file [sha256.Size]byte }

var (
	_ hostapi.Writer = (*writer)(nil)
	_ sdk.Configurer = (*writer)(nil)
)

func newWriter() *writer { return &writer{last: map[string]written{}} }

// Validate implements sdk.Configurer.
func (w *writer) Validate(b []byte) hostapi.FieldErrors {
	_, es := parseConfig(b)
	return es
}

// Configure implements sdk.Configurer. It reads password_file.
func (w *writer) Configure(_ context.Context, b []byte) error {
	c, es := parseConfig(b)
	if len(es) > 0 {
		return es
	}
	pw := c.Password
	if c.PasswordFile != "" {
		raw, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return sdk.Errorf(sdk.CodeInvalidArgument, "reading password_file: %w", err)
		}
		pw = strings.TrimRight(string(raw), "\r\n")
		if pw == "" {
			return sdk.Errorf(sdk.CodeInvalidArgument, "reading password_file %s: it is empty; Java refuses keystores without a password", c.PasswordFile)
		}
	}
	w.mu.Lock()
	w.cfg, w.password = c, pw
	w.mu.Unlock()
	return nil
}

// Write implements hostapi.Writer: it replaces the keystore and the trust
// store, each atomically, and only when their content changed (PKCS#12
// encodings are salted, so equal content is checked by decoding).
func (w *writer) Write(_ context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cfg, pw := w.cfg, w.password
	if len(set.X509SVIDs) == 0 {
		return nil, sdk.Errorf(sdk.CodeFailedPrecondition, "writing svid %q: it has no X509-SVID; writer-pkcs12 writes X509-SVIDs only", set.Name)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.Dir, err)
	}
	ks := filepath.Join(cfg.Dir, cfg.Keystore)
	if err := w.writeKeystore(ks, set.X509SVIDs[0], pw); err != nil {
		return nil, err
	}
	ts := filepath.Join(cfg.Dir, cfg.Truststore)
	if err := w.writeTruststore(ts, set, pw); err != nil {
		return nil, err
	}
	return &hostapi.WriteResult{Paths: []string{ks, ts}}, nil
}

// fingerprint hashes the password and the DER inputs of a file.
func fingerprint(pw string, ders ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, b := range append([][]byte{[]byte(pw)}, ders...) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// current reports whether the file name already holds what input
// describes: known from the last write when the file is unchanged since,
// else by decoding it with same. A file found current is remembered.
func (w *writer) current(name string, input [sha256.Size]byte, same func(old []byte) bool) bool {
	old, err := os.ReadFile(name)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(old)
	if l, ok := w.last[name]; ok && l.file == sum {
		return l.input == input
	}
	if !same(old) {
		return false
	}
	w.last[name] = written{input: input, file: sum}
	return true
}

// put replaces name with b and remembers it.
func (w *writer) put(name string, input [sha256.Size]byte, b []byte) error {
	delete(w.last, name)
	if err := replace(name, b); err != nil {
		return err
	}
	w.last[name] = written{input: input, file: sha256.Sum256(b)}
	return nil
}

func (w *writer) writeKeystore(name string, svid *x509svid.SVID, pw string) error {
	if svid.PrivateKey == nil || len(svid.Certificates) == 0 {
		return sdk.Errorf(sdk.CodeInvalidArgument, "writing %s: the X509-SVID %s has no key or no certificate", name, svid.ID)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding the key of %s: %w", svid.ID, err)
	}
	ders := [][]byte{keyDER}
	for _, c := range svid.Certificates {
		ders = append(ders, c.Raw)
	}
	input := fingerprint(pw, ders...)
	if w.current(name, input, func(old []byte) bool {
		key, cert, cas, err := pkcs12.DecodeChain(old, pw)
		return err == nil && sameKey(key, svid.PrivateKey) && sameCerts(append([]*x509.Certificate{cert}, cas...), svid.Certificates)
	}) {
		return nil
	}
	leaf, chain := svid.Certificates[0], svid.Certificates[1:]
	b, err := pkcs12.Modern.Encode(svid.PrivateKey, leaf, chain, pw)
	if err != nil {
		return fmt.Errorf("encoding the keystore of %s: %w", svid.ID, err)
	}
	return w.put(name, input, b)
}

// writeTruststore writes every authority of every bundle, the trust
// domain's first and federated ones after it, as trusted certificate
// entries named "<trust domain> <n>".
func (w *writer) writeTruststore(name string, set *hostapi.CredentialSet, pw string) error {
	var (
		entries []pkcs12.TrustStoreEntry
		certs   []*x509.Certificate
	)
	if set.X509Bundles != nil {
		bundles := set.X509Bundles.Bundles() // sorted by trust domain
		sort.SliceStable(bundles, func(i, j int) bool {
			return bundles[i].TrustDomain() == set.TrustDomain && bundles[j].TrustDomain() != set.TrustDomain
		})
		for _, b := range bundles {
			for i, c := range b.X509Authorities() {
				entries = append(entries, pkcs12.TrustStoreEntry{Cert: c, FriendlyName: fmt.Sprintf("%s %d", b.TrustDomain().Name(), i+1)})
				certs = append(certs, c)
			}
		}
	}
	if len(entries) == 0 {
		return sdk.Errorf(sdk.CodeInvalidArgument, "writing %s: svid %q has no X.509 authorities to trust", name, set.Name)
	}
	ders := make([][]byte, 0, 2*len(entries))
	for _, e := range entries {
		ders = append(ders, []byte(e.FriendlyName), e.Cert.Raw)
	}
	input := fingerprint(pw, ders...)
	if w.current(name, input, func(old []byte) bool {
		have, err := pkcs12.DecodeTrustStore(old, pw)
		return err == nil && sameCerts(have, certs)
	}) {
		return nil
	}
	b, err := pkcs12.Modern.EncodeTrustStoreEntries(entries, pw)
	if err != nil {
		return fmt.Errorf("encoding the trust store: %w", err)
	}
	return w.put(name, input, b)
}

func sameKey(a, b any) bool {
	da, err1 := x509.MarshalPKCS8PrivateKey(a)
	db, err2 := x509.MarshalPKCS8PrivateKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// replace writes b to name atomically: a temporary file in the same
// directory, synced, then renamed over name (WASI's path_rename in WASM).
// A reader sees the old file or the new one, never a part.
func replace(name string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Chmod(fileMode); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("replacing %s: %w", name, err)
	}
	return nil
}
