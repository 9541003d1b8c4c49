package tlsconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFixture copies testdata/<name> into a new temporary folder.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	des, err := os.ReadDir(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		data, err := os.ReadFile(filepath.Join("testdata", name, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, de.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestStrictFixtures loads the newest-draft fixture folder with one file
// replaced by a hand-written fixture that breaks one rule of the draft
// (testdata/README.md) and checks that the load fails naming the file and
// the byte offset of the offending data.
func TestStrictFixtures(t *testing.T) {
	const (
		cred = CredentialBundleName
		tb   = "example.org" + TrustBundleSuffix
	)
	// Offsets: the PKCS#8 key block is 241 bytes, the leaf 704, the
	// intermediate 652, the example.org root 668.
	tests := []struct {
		fixture, replaces, want string
	}{
		{"cred-header.pem", cred, "byte 241: CERTIFICATE block has PEM headers"},
		{"cred-inter-block.pem", cred, "byte 241: data outside a PEM block"},
		{"cred-trailing.pem", cred, "byte 1597: data outside a PEM block"},
		{"cred-cert-first.pem", cred, `byte 0: the first PEM block is "CERTIFICATE", want "PRIVATE KEY"`},
		{"cred-root-to-leaf.pem", cred, "byte 241: the certificate is not issued by the next one"},
		{"cred-other-type.pem", cred, `byte 945: PEM block is "PUBLIC KEY", want "CERTIFICATE"`},
		{"cred-key-only.pem", cred, "it has a key but no certificate"},
		{"tb-header.pem", tb, "byte 0: CERTIFICATE block has PEM headers"},
		{"tb-inter-block.pem", tb, "byte 668: data outside a PEM block"},
		{"tb-other-type.pem", tb, `byte 668: PEM block is "PUBLIC KEY", want "CERTIFICATE"`},
		{"tb-empty.pem", tb, "it holds no certificate"},
		{"tb-whitespace-only.pem", tb, "it holds no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			dir := copyFixture(t, "spiffe-fs")
			o, err := newOptions([]Option{WithDir(dir)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := load(o); err != nil {
				t.Fatalf("the valid fixture does not load: %v", err)
			}
			data, err := os.ReadFile(filepath.Join("testdata", "invalid", tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tt.replaces)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = load(o)
			if err == nil {
				t.Fatal("the load succeeded")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to name %s and contain %q", err, path, tt.want)
			}
		})
	}
}
