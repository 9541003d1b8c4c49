//go:build !wasip1

package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/subproc"
	"github.com/svidagent/svidagent/internal/plugin/wasmrt"
	"github.com/svidagent/svidagent/internal/wire"
	"github.com/svidagent/svidagent/sdk"
	"github.com/svidagent/svidagent/sdk/wasm"
)

const (
	methodValidate  = "svidagent.plugin.v1.Plugin/Validate"
	methodConfigure = "svidagent.plugin.v1.Plugin/Configure"
	methodWrite     = "svidagent.plugin.writer.v1.Writer/Write"
	password        = "ch4ngeit"
)

// The stub build of sdk/wasm: TestStub drives the plugin through the same
// dispatch the .wasm uses.
func TestMain(m *testing.M) {
	wasm.Serve(info, newWriter())
	var err error
	if buildDir, err = os.MkdirTemp("", "writer-pkcs12"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// buildDir holds the binaries built by [build], for the test process.
var buildDir string

// ---- credentials ------------------------------------------------------

// ca is a test CA that mints real certificates.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(t *testing.T, td string, parent *ca) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: td + " CA"},
		URIs:      []*url.URL{{Scheme: "spiffe", Host: td}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	signer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert, key}
}

func (c *ca) svid(t *testing.T, id string, chain ...*x509.Certificate) *x509svid.SVID {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sid := spiffeid.RequireFromString(id)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{sid.URL()},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: sid, Certificates: append([]*x509.Certificate{leaf}, chain...), PrivateKey: key}
}

// fixture is a credential set as the agent hands it to writers: a leaf
// issued by an intermediate under example.org's root, and a federated
// bundle.
type fixture struct {
	root, inter, fed *ca
}

func newFixture(t *testing.T) *fixture {
	root := newCA(t, "example.org", nil)
	return &fixture{root: root, inter: newCA(t, "example.org", root), fed: newCA(t, "partner.test", nil)}
}

func (f *fixture) set(t *testing.T) *hostapi.CredentialSet {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	return &hostapi.CredentialSet{
		Name: "web", TrustDomain: td, Changed: hostapi.ChangedX509,
		Credentials: hostapi.Credentials{
			X509SVIDs: []*x509svid.SVID{f.inter.svid(t, "spiffe://example.org/web", f.inter.cert)},
			X509Bundles: x509bundle.NewSet(
				x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("partner.test"), []*x509.Certificate{f.fed.cert}),
				x509bundle.FromX509Authorities(td, []*x509.Certificate{f.root.cert}),
			),
		},
	}
}

// ---- reading the files back -------------------------------------------

// openssl runs openssl with the password in $P12PASS and returns the PEM
// blocks it printed.
func openssl(t *testing.T, pw string, args ...string) []*pem.Block {
	t.Helper()
	cmd := exec.Command("openssl", append([]string{"pkcs12", "-passin", "env:P12PASS"}, args...)...)
	cmd.Env = append(os.Environ(), "P12PASS="+pw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl pkcs12 %v: %v\n%s\n(openssl comes from Debian's openssl package: apt-get install -y openssl)", args, err, stderr.Bytes())
	}
	var blocks []*pem.Block
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return blocks
		}
		blocks = append(blocks, b)
	}
}

// verify reads the keystore and the trust store in dir back, with
// go-pkcs12 and with openssl, and checks them against set.
func verify(t *testing.T, dir string, set *hostapi.CredentialSet) {
	t.Helper()
	svid := set.X509SVIDs[0]
	ks, ts := filepath.Join(dir, defaultKeystore), filepath.Join(dir, defaultTruststore)
	for _, p := range []string{ks, ts} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}

	// go-pkcs12
	b, err := os.ReadFile(ks)
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, cas, err := pkcs12.DecodeChain(b, password)
	if err != nil {
		t.Fatalf("go-pkcs12 decoding the keystore: %v", err)
	}
	if !sameKey(key, svid.PrivateKey) || !sameCerts(append([]*x509.Certificate{leaf}, cas...), svid.Certificates) {
		t.Error("go-pkcs12: the keystore does not hold the SVID's key and chain")
	}
	b, err = os.ReadFile(ts)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := pkcs12.DecodeTrustStore(b, password)
	if err != nil {
		t.Fatalf("go-pkcs12 decoding the trust store: %v", err)
	}
	td, _ := set.X509Bundles.Get(set.TrustDomain)
	want := td.X509Authorities()
	for _, bd := range set.X509Bundles.Bundles() {
		if bd.TrustDomain() != set.TrustDomain {
			want = append(want, bd.X509Authorities()...)
		}
	}
	if !sameCerts(trusted, want) {
		t.Errorf("go-pkcs12: the trust store holds %d certificates, not the bundles' %d authorities, own first", len(trusted), len(want))
	}

	// openssl: the leaf's SPIFFE ID, and its key is the SVID's.
	certs := openssl(t, password, "-in", ks, "-nokeys", "-clcerts")
	if len(certs) != 1 {
		t.Fatalf("openssl: %d client certificates in the keystore, want 1", len(certs))
	}
	c, err := x509.ParseCertificate(certs[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != svid.ID.String() {
		t.Errorf("openssl: the keystore's certificate has URIs %v, want %s", c.URIs, svid.ID)
	}
	keys := openssl(t, password, "-in", ks, "-nocerts", "-nodes")
	if len(keys) != 1 || keys[0].Type != "PRIVATE KEY" {
		t.Fatalf("openssl: %d keys in the keystore, want one PRIVATE KEY", len(keys))
	}
	k, err := x509.ParsePKCS8PrivateKey(keys[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !k.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
		t.Error("openssl: the keystore's key does not match its certificate")
	}
	if cas := openssl(t, password, "-in", ks, "-nokeys", "-cacerts"); len(cas) != 1 || !bytes.Equal(cas[0].Bytes, svid.Certificates[1].Raw) {
		t.Errorf("openssl: the keystore's CA certificates are not the intermediate (%d)", len(cas))
	}
	var got, wantRaw []string
	for _, b := range openssl(t, password, "-in", ts, "-nokeys") {
		got = append(got, string(b.Bytes))
	}
	for _, c := range want {
		wantRaw = append(wantRaw, string(c.Raw))
	}
	sort.Strings(got)
	sort.Strings(wantRaw)
	if !reflect.DeepEqual(got, wantRaw) {
		t.Errorf("openssl: the trust store holds %d certificates, want the %d authorities", len(got), len(wantRaw))
	}

	// keytool, when a JDK is installed: Java's own view.
	if _, err := exec.LookPath("keytool"); err == nil {
		for _, f := range []struct{ path, want string }{{ks, "PrivateKeyEntry"}, {ts, "trustedCertEntry"}} {
			out, err := exec.Command("keytool", "-list", "-storetype", "PKCS12", "-keystore", f.path, "-storepass", password).CombinedOutput()
			if err != nil || !strings.Contains(string(out), f.want) {
				t.Errorf("keytool -list %s: %v\n%s", f.path, err, out)
			}
		}
	} else {
		t.Log("keytool not installed (Debian: openjdk-17-jre-headless); checked with openssl and go-pkcs12 only")
	}

	// Nothing left behind by the atomic replace.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{defaultKeystore, defaultTruststore}; !reflect.DeepEqual(names, want) {
		t.Errorf("dir holds %v, want %v", names, want)
	}
}

// contents returns each file's content, to tell a rewrite from none.
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, n := range []string{defaultKeystore, defaultTruststore} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		m[n] = string(b)
	}
	return m
}

// exercise runs the same scenario against any runtime: write, read back,
// write the same set (nothing changes), write a rotated set (both files
// change only as needed). hostDir is where the files land on the host;
// wantDir is the dir the plugin reports.
func exercise(t *testing.T, w hostapi.Writer, hostDir, wantDir string) {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t)
	set := f.set(t)
	res, err := w.Write(ctx, set)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if want := []string{wantDir + "/" + defaultKeystore, wantDir + "/" + defaultTruststore}; !reflect.DeepEqual(res.Paths, want) {
		t.Errorf("Write reported %v, want %v", res.Paths, want)
	}
	verify(t, hostDir, set)

	before := contents(t, hostDir)
	if _, err := w.Write(ctx, set); err != nil {
		t.Fatal(err)
	}
	if after := contents(t, hostDir); !reflect.DeepEqual(after, before) {
		t.Error("writing the same set again rewrote the files")
	}

	// A rotation: a new leaf and key, the same bundles. Only the keystore
	// changes.
	rotated := f.set(t)
	if _, err := w.Write(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	after := contents(t, hostDir)
	if after[defaultKeystore] == before[defaultKeystore] || after[defaultTruststore] != before[defaultTruststore] {
		t.Error("a rotation of the leaf must replace the keystore and keep the trust store")
	}
	verify(t, hostDir, rotated)
}

func asFieldErrors(err error, fes *hostapi.FieldErrors) bool { return errors.As(err, fes) }

// ---- the tests ----------------------------------------------------------

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   []string
	}{
		{"minimal", `{"dir":"/run/java","password":"x"}`, nil},
		{"everything", `{"dir":"/run/java","password_file":"/etc/p12pass","keystore":"svid.p12","truststore":"ca.p12"}`, nil},
		{"no dir", `{"password":"x"}`, []string{"dir"}},
		{"relative dir", `{"dir":"java","password":"x"}`, []string{"dir"}},
		{"no password", `{"dir":"/d"}`, []string{"password"}},
		{"empty password", `{"dir":"/d","password":""}`, []string{"password"}},
		{"both passwords", `{"dir":"/d","password":"x","password_file":"/p"}`, []string{"password_file"}},
		{"relative password_file", `{"dir":"/d","password_file":"p"}`, []string{"password_file"}},
		{"keystore is a path", `{"dir":"/d","password":"x","keystore":"../k.p12"}`, []string{"keystore"}},
		{"same names", `{"dir":"/d","password":"x","keystore":"a.p12","truststore":"a.p12"}`, []string{"truststore"}},
		{"not a string", `{"dir":"/d","password":7}`, []string{"password", "password"}},
		{"unknown", `{"dir":"/d","password":"x","mode":"0644"}`, []string{"mode"}},
		{"not an object", `[]`, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp pluginv1.ValidateResponse
			if err := wasm.Call(context.Background(), methodValidate, &pluginv1.ValidateRequest{ConfigJson: []byte(tt.config)}, &resp); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range resp.GetProblems() {
				got = append(got, p.GetField())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems with %q, want %q: %v", got, tt.want, resp.GetProblems())
			}
		})
	}
}

// stubWriter is the in-process plugin seen through sdk/wasm's stub Call:
// the same dispatch and protobuf conversions as the .wasm.
type stubWriter struct{}

func (stubWriter) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	req, err := wire.CredentialSetToProto(set)
	if err != nil {
		return nil, err
	}
	var resp writerv1.WriteResponse
	if err := wasm.Call(ctx, methodWrite, req, &resp); err != nil {
		return nil, err
	}
	return &hostapi.WriteResult{Paths: resp.GetPaths()}, nil
}

func TestStub(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "java") // created by the writer
	pwFile := filepath.Join(t.TempDir(), "p12pass")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := wasm.Call(ctx, methodWrite, &writerv1.WriteRequest{Name: "web"}, nil); sdk.CodeOf(err) != sdk.CodeFailedPrecondition {
		t.Fatalf("Write before Configure = %v, want FAILED_PRECONDITION", err)
	}
	cfg := fmt.Sprintf(`{"dir":%q,"password_file":%q}`, dir, pwFile)
	if err := wasm.Call(ctx, methodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(cfg)}, nil); err != nil {
		t.Fatal(err)
	}
	exercise(t, stubWriter{}, dir, dir)

	missing := fmt.Sprintf(`{"dir":%q,"password_file":%q}`, dir, pwFile+".missing")
	if err := wasm.Call(ctx, methodConfigure, &pluginv1.ConfigureRequest{ConfigJson: []byte(missing)}, nil); sdk.CodeOf(err) != sdk.CodeInvalidArgument || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("Configure with a missing password_file = %v, want INVALID_ARGUMENT naming it", err)
	}
}

// build builds the plugin once per test process, for GOOS/GOARCH env.
var builds sync.Map // string → func() (string, error)

func build(t *testing.T, name string, env ...string) string {
	t.Helper()
	f, _ := builds.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		out := filepath.Join(buildDir, name)
		args := []string{"build", "-o", out}
		if strings.HasSuffix(name, ".wasm") {
			args = append(args, "-buildmode=c-shared")
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", name, err, b)
		}
		return out, nil
	}))
	out, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wasmCache is the compilation cache the WASM tests share, kept across
// runs like the SPIRE binaries ($SVIDAGENT_CACHE, default
// ~/.cache/svidagent): under -race wazero takes about a minute to compile
// the 11 MB module, and the module is the same from run to run. wazero
// keys the cache by the module's bytes and its own version.
func wasmCache(t *testing.T) string {
	dir := os.Getenv("SVIDAGENT_CACHE")
	if dir == "" {
		home, err := os.UserCacheDir()
		if err != nil {
			return filepath.Join(buildDir, "wasm-cache")
		}
		dir = filepath.Join(home, "svidagent")
	}
	return filepath.Join(dir, "wasm-cache-test")
}

func TestWASM(t *testing.T) {
	mod := build(t, "writer-pkcs12.wasm", "GOOS=wasip1", "GOARCH=wasm")
	st, err := os.Stat(mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writer-pkcs12.wasm: %.1f MB", float64(st.Size())/1e6)
	sum, err := wasmrt.HashFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := t.TempDir()
	open := func(t *testing.T, cfg string) (*adapter.Plugin, error) {
		// The compilation cache: wazero compiles the 11 MB module once
		// for the test process, not at every Open.
		conn, err := wasmrt.Open(ctx, wasmrt.Config{Path: mod, SHA256: sum, Kind: hostapi.KindWriter, Name: "p12", WriteDir: out,
			CacheDir: wasmCache(t)})
		if err != nil {
			t.Fatal(err)
		}
		return adapter.Open(ctx, conn, adapter.Settings{Kind: hostapi.KindWriter, Name: "p12", ConfigJSON: []byte(cfg), HostServices: conn.HostServices()})
	}
	t.Run("write", func(t *testing.T) {
		p, err := open(t, `{"password":"`+password+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		// The host maps the guest's /out/... paths to host paths.
		exercise(t, p.Writer(), out, out)
	})
	t.Run("validate", func(t *testing.T) {
		tests := []struct {
			name, config, field string
		}{
			{"dir outside /out", `{"dir":"/etc","password":"x"}`, "dir"},
			{"password_file", `{"password_file":"/etc/p12pass"}`, "password_file"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := open(t, tt.config)
				var fes hostapi.FieldErrors
				if !asFieldErrors(err, &fes) || len(fes) != 1 || fes[0].Field != tt.field {
					t.Errorf("opening with %s = %v, want one problem with %s", tt.config, err, tt.field)
				}
			})
		}
	})
	t.Run("subdir of /out", func(t *testing.T) {
		p, err := open(t, `{"dir":"/out/java","password":"`+password+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		set := newFixture(t).set(t)
		res, err := p.Writer().Write(ctx, set)
		if err != nil {
			t.Fatal(err)
		}
		if res.Paths[0] != filepath.Join(out, "java", "keystore.p12") {
			t.Errorf("paths %v", res.Paths)
		}
		verify(t, filepath.Join(out, "java"), set)
	})
}

func TestGoPlugin(t *testing.T) {
	bin := build(t, "writer-pkcs12")
	sum, err := wasmrt.HashFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := subproc.Open(ctx, subproc.Config{Path: bin, SHA256: sum, Kind: hostapi.KindWriter, Name: "p12", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := adapter.Open(ctx, conn, adapter.Settings{Kind: hostapi.KindWriter, Name: "p12",
		ConfigJSON: []byte(fmt.Sprintf(`{"dir":%q,"password":%q}`, dir, password))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	exercise(t, p.Writer(), dir, dir)
}

// TestHammer: concurrent Writes and Configures of one writer (its lock)
// under -race; every Write leaves a complete, decodable keystore.
func TestHammer(t *testing.T) {
	w := newWriter()
	dir := t.TempDir()
	cfg := []byte(fmt.Sprintf(`{"dir":%q,"password":%q}`, dir, password))
	if err := w.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	sets := []*hostapi.CredentialSet{f.set(t), f.set(t), f.set(t)}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				if g == 0 && i%2 == 0 {
					if err := w.Configure(context.Background(), cfg); err != nil {
						errs <- err
					}
				}
				if _, err := w.Write(context.Background(), sets[(g+i)%len(sets)]); err != nil {
					errs <- err
				}
				b, err := os.ReadFile(filepath.Join(dir, defaultKeystore))
				if err == nil {
					_, _, _, err = pkcs12.DecodeChain(b, password)
				}
				if err != nil {
					errs <- fmt.Errorf("reading the keystore back: %w", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConformance runs the plugin conformance suite over all three forms,
// as `svidagent conformance -kind writer -plugin ...` does for the files.
func TestConformance(t *testing.T) {
	t.Run("in-process", func(t *testing.T) {
		dir := t.TempDir()
		conformance.Run(t, conformance.Target{Kind: hostapi.KindWriter, NewImpl: func() any { return newWriter() }, Info: info,
			OutputDir: dir, ConfigJSON: []byte(fmt.Sprintf(`{"dir":%q,"password":%q}`, dir, password))})
	})
	t.Run("wasm", func(t *testing.T) {
		conformance.Run(t, conformance.Target{Kind: hostapi.KindWriter, Path: build(t, "writer-pkcs12.wasm", "GOOS=wasip1", "GOARCH=wasm"),
			CacheDir: wasmCache(t), OutputDir: t.TempDir(), ConfigJSON: []byte(`{"password":"` + password + `"}`)})
	})
	t.Run("go-plugin", func(t *testing.T) {
		dir := t.TempDir()
		conformance.Run(t, conformance.Target{Kind: hostapi.KindWriter, Path: build(t, "writer-pkcs12"),
			OutputDir: dir, ConfigJSON: []byte(fmt.Sprintf(`{"dir":%q,"password":%q}`, dir, password))})
	})
}

// TestFreshInstance: a new instance (a restarted plugin) finds files that
// are current by decoding them, and leaves them alone; a new password
// rewrites them.
func TestFreshInstance(t *testing.T) {
	dir := t.TempDir()
	set := newFixture(t).set(t)
	configured := func(pw string) *writer {
		w := newWriter()
		if err := w.Configure(context.Background(), []byte(fmt.Sprintf(`{"dir":%q,"password":%q}`, dir, pw))); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if _, err := configured(password).Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	before := contents(t, dir)
	if _, err := configured(password).Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(contents(t, dir), before) {
		t.Error("a fresh instance rewrote files that were current")
	}
	if _, err := configured("an0ther").Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	after := contents(t, dir)
	for n := range after {
		if after[n] == before[n] {
			t.Errorf("%s was not rewritten for a new password", n)
		}
	}
	if _, _, _, err := pkcs12.DecodeChain([]byte(after[defaultKeystore]), "an0ther"); err != nil {
		t.Errorf("the keystore does not open with the new password: %v", err)
	}
}
