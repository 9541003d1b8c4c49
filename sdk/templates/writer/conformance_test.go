//go:build !wasip1

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

var invalidConfig = []byte(`{"dir":"relative/dir"}`)

// wantModes are the modes the writer sets where chmod works.
var wantModes = map[string]fs.FileMode{certFile: certMode, keyFile: keyMode}

func configFor(dir string) []byte {
	b, _ := json.Marshal(config{Dir: dir})
	return b
}

// TestConformanceInProcess runs the suite over the plugin in this process:
// fast, and what to run while editing.
func TestConformanceInProcess(t *testing.T) {
	dir := t.TempDir()
	conformance.Run(t, conformance.Target{
		Kind:              hostapi.KindWriter,
		NewImpl:           func() any { return &writer{} },
		Info:              info,
		ConfigJSON:        configFor(dir),
		InvalidConfigJSON: invalidConfig,
		OutputDir:         dir,
		Modes:             wantModes,
	})
}

// TestConformanceBuilt builds the plugin as it ships, a .wasm module and a
// go-plugin executable, and runs the suite over both.
func TestConformanceBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin twice; run without -short")
	}
	dir := t.TempDir()
	goBin := goCommand()
	for _, b := range []struct {
		out    string
		args   []string
		env    []string
		config func(outDir string) []byte
		modes  map[string]fs.FileMode
	}{
		// WASM: the output directory is /out, the default; files are 0600
		// (no chmod in WASI), which the key check accepts.
		{"writer.wasm", []string{"-buildmode=c-shared"}, []string{"GOOS=wasip1", "GOARCH=wasm"},
			func(string) []byte { return []byte(`{}`) }, nil},
		{"writer", nil, nil, configFor, wantModes},
	} {
		cmd := exec.Command(goBin, append(append([]string{"build"}, b.args...), "-o", filepath.Join(dir, b.out), ".")...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.out, err, out)
		}
		t.Run(b.out, func(t *testing.T) {
			outDir := t.TempDir()
			conformance.Run(t, conformance.Target{
				Kind:              hostapi.KindWriter,
				Path:              filepath.Join(dir, b.out),
				ConfigJSON:        b.config(outDir),
				InvalidConfigJSON: invalidConfig,
				OutputDir:         outDir,
				Modes:             b.modes,
			})
			// What the suite wrote last must be a matching chain and key.
			checkPair(t, outDir)
		})
	}
}

// checkPair asserts that dir holds a chain and a key that belong together.
func checkPair(t *testing.T, dir string) {
	t.Helper()
	chainPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(chainPEM, keyPEM)
	if err != nil {
		t.Fatalf("the written chain and key do not parse as one X509-SVID: %v", err)
	}
	if svid.ID.String() == "" {
		t.Fatal("the written SVID has no SPIFFE ID")
	}
}

// testSet mints a self-signed X509-SVID for id, serial n.
func testSet(t testing.TB, id spiffeid.ID, n int64) *hostapi.CredentialSet {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), URIs: []*url.URL{id.URL()},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &hostapi.CredentialSet{Name: "web", TrustDomain: id.TrustDomain(),
		Credentials: hostapi.Credentials{X509SVIDs: []*x509svid.SVID{{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}}},
		Changed:     hostapi.ChangedX509}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		wantField    string // "" for a valid config; "-" for the whole object
	}{
		{"valid", `{"dir":"/run/out"}`, ""},
		{"missing dir", `{}`, "dir"},
		{"relative dir", `{"dir":"out"}`, "dir"},
		{"unknown attribute", `{"dir":"/run/out","mode":"0644"}`, "-"},
		{"not an object", `[]`, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := (&writer{}).Validate([]byte(tc.config))
			if tc.wantField == "" {
				if len(es) != 0 {
					t.Fatalf("Validate(%s) = %v, want no errors", tc.config, es)
				}
				return
			}
			if len(es) != 1 {
				t.Fatalf("Validate(%s) = %v, want one error", tc.config, es)
			}
			if got := es[0].Field; (tc.wantField == "-" && got != "") || (tc.wantField != "-" && got != tc.wantField) {
				t.Fatalf("Validate(%s) names field %q, want %q", tc.config, got, tc.wantField)
			}
		})
	}
}

func TestWriteRejectsIncompleteSets(t *testing.T) {
	w := &writer{}
	if err := w.Configure(context.Background(), configFor(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	noKey := testSet(t, id, 1)
	noKey.X509SVIDs[0].PrivateKey = nil
	for _, tc := range []struct {
		name string
		set  *hostapi.CredentialSet
	}{
		{"no X509-SVID", &hostapi.CredentialSet{Name: "web"}},
		{"no private key", noKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Write(context.Background(), tc.set)
			if got := sdk.CodeOf(err); got != sdk.CodeInvalidArgument {
				t.Fatalf("Write: code %v (%v), want INVALID_ARGUMENT", got, err)
			}
		})
	}
}

// TestWriteHammer writes from many goroutines while Configure moves the
// output directory: under -race, the locks must hold, and each directory
// must end with a matching chain and key.
func TestWriteHammer(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	w := &writer{}
	ctx := context.Background()
	if err := w.Configure(ctx, configFor(dirs[0])); err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	sets := []*hostapi.CredentialSet{testSet(t, id, 1), testSet(t, id, 2)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := w.Write(ctx, sets[(g+i)%2]); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		}()
	}
	for i := range 20 {
		if err := w.Configure(ctx, configFor(dirs[i%2])); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for _, d := range dirs {
		if _, err := w.Write(ctx, sets[0]); err != nil {
			t.Fatal(err)
		}
		if err := w.Configure(ctx, configFor(d)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(ctx, sets[0]); err != nil {
			t.Fatal(err)
		}
		checkPair(t, d)
		fi, err := os.Stat(filepath.Join(d, keyFile))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != keyMode {
			t.Errorf("%s: mode %#o, want %#o", keyFile, fi.Mode().Perm(), keyMode)
		}
		b, _ := os.ReadFile(filepath.Join(d, keyFile))
		if blk, _ := pem.Decode(b); blk == nil || blk.Type != "PRIVATE KEY" {
			t.Errorf("%s does not hold a PEM PRIVATE KEY", keyFile)
		}
	}
}

// goCommand is the go command on PATH.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
