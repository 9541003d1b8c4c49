package tlsconfig_test

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

// tdExample and tdOther are the fixtures' trust domains.
var (
	tdExample = spiffeid.RequireTrustDomainFromString("example.org")
	tdOther   = spiffeid.RequireTrustDomainFromString("other.org")
)

var fixtureRevisions = []tlsconfig.Revision{tlsconfig.RevisionSPIFFEFS, tlsconfig.RevisionSPIFFEFS20260813, tlsconfig.RevisionSPIFFEFS202602}

// TestReadsEveryRevisionFixture: each hand-written folder of
// testdata/<revision> (one of them laid out as spiffe/spiffefs lays it
// out, with hints.json and an indexed second SVID) loads, auto-detected
// and pinned, with each trust domain's bundle kept apart.
func TestReadsEveryRevisionFixture(t *testing.T) {
	for _, rev := range fixtureRevisions {
		for _, pinned := range []bool{false, true} {
			name := string(rev) + "/auto"
			opts := []tlsconfig.Option{tlsconfig.WithDir(filepath.Join("testdata", string(rev)))}
			if pinned {
				name = string(rev) + "/pinned"
				opts = append(opts, tlsconfig.WithRevision(rev))
			}
			t.Run(name, func(t *testing.T) {
				src := newSource(t, opts...)
				svid, err := src.GetX509SVID()
				if err != nil {
					t.Fatal(err)
				}
				if want := spiffeid.RequireFromPath(tdExample, "/web"); svid.ID != want {
					t.Errorf("SVID %s, want %s", svid.ID, want)
				}
				if len(svid.Certificates) != 2 {
					t.Errorf("chain has %d certificates, want leaf and intermediate", len(svid.Certificates))
				}
				got := src.TrustDomains()
				slices.SortFunc(got, func(a, b spiffeid.TrustDomain) int { return strings.Compare(a.Name(), b.Name()) })
				if !slices.Equal(got, []spiffeid.TrustDomain{tdExample, tdOther}) {
					t.Errorf("trust domains %v, want %v", got, []spiffeid.TrustDomain{tdExample, tdOther})
				}
				a, _ := src.GetX509BundleForTrustDomain(tdExample)
				b, _ := src.GetX509BundleForTrustDomain(tdOther)
				if a == nil || b == nil || len(a.X509Authorities()) != 1 || len(b.X509Authorities()) != 1 || a.X509Authorities()[0].Equal(b.X509Authorities()[0]) {
					t.Errorf("bundles not one root each, kept apart: %v, %v", a, b)
				}
			})
		}
	}
}

// TestPinnedRevisionIgnoresOtherNames: a Source pinned to the February
// 2026 revision does not read a newest-draft folder.
func TestPinnedRevisionIgnoresOtherNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := tlsconfig.NewSource(ctx, tlsconfig.WithDir(filepath.Join("testdata", "spiffe-fs")),
		tlsconfig.WithLayout(tlsconfig.LayoutSPIFFEFS), tlsconfig.WithRevision(tlsconfig.RevisionSPIFFEFS202602))
	if err == nil || !strings.Contains(err.Error(), "credential-bundle.pem") {
		t.Fatalf("NewSource = %v, want a failure to read credential-bundle.pem", err)
	}
	if _, err := tlsconfig.NewSource(ctx, tlsconfig.WithDir(t.TempDir()), tlsconfig.WithRevision("spiffe-fs-1999")); err == nil || !strings.Contains(err.Error(), `unknown revision "spiffe-fs-1999"`) {
		t.Errorf("NewSource with an unknown revision = %v", err)
	}
}

// TestWriterMatchesFixtures: for every revision, svidagent's writer lays
// out the same file names as the hand-written fixture, with the same PEM
// block types in the same order, and a second SVID is written as the
// fixture (spiffe/spiffefs) has it.
func TestWriterMatchesFixtures(t *testing.T) {
	ca := testca.New(t, tdExample)
	fed := testca.New(t, tdOther)
	for _, rev := range fixtureRevisions {
		t.Run(string(rev), func(t *testing.T) {
			dir := t.TempDir()
			w := newWriter(t, dir, string(rev))
			svids := []*x509svid.SVID{ca.ChildCA(t).X509SVID(t, spiffeid.RequireFromPath(tdExample, "/web"))}
			if rev == tlsconfig.RevisionSPIFFEFS {
				svids = append(svids, fed.X509SVID(t, spiffeid.RequireFromPath(tdOther, "/b")))
			}
			set := &hostapi.CredentialSet{Name: "test", TrustDomain: tdExample, Credentials: hostapi.Credentials{
				X509SVIDs: svids, X509Bundles: x509bundle.NewSet(ca.X509Bundle(), fed.X509Bundle()),
			}}
			if _, err := w.Write(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			want, got := structure(t, filepath.Join("testdata", string(rev))), structure(t, dir)
			if !slices.Equal(got, want) {
				t.Errorf("writer layout\n%s\nfixture layout\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			src := newSource(t, tlsconfig.WithDir(dir), tlsconfig.WithRevision(rev))
			if svid, err := src.GetX509SVID(); err != nil || !svid.Certificates[0].Equal(svids[0].Certificates[0]) {
				t.Errorf("the writer's folder loads %v, %v; want the first SVID", svid, err)
			}
		})
	}
}

// structure lists a folder's regular files with their PEM block types, or
// "json" for hints.json.
func structure(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for b, rest := pem.Decode(data); b != nil; b, rest = pem.Decode(rest) {
			types = append(types, b.Type)
		}
		if de.Name() == "hints.json" {
			types = []string{"json"}
		}
		out = append(out, de.Name()+": "+strings.Join(types, ", "))
	}
	return out
}

// TestWriterBytesMatchFixtures: given the fixtures' own keys and
// certificates, svidagent's writer reproduces every fixture file byte for
// byte, hints.json included (the newest fixture is laid out as
// spiffe/spiffefs lays it out).
func TestWriterBytesMatchFixtures(t *testing.T) {
	for _, rev := range fixtureRevisions {
		t.Run(string(rev), func(t *testing.T) {
			fixture := filepath.Join("testdata", string(rev))
			credNames := map[tlsconfig.Revision]string{
				tlsconfig.RevisionSPIFFEFS:         "credential-bundle.private-key.x509.pem",
				tlsconfig.RevisionSPIFFEFS20260813: "credential-bundle.private-key.pem",
				tlsconfig.RevisionSPIFFEFS202602:   "credential-bundle.pem",
			}
			tbSuffix := ".spiffe-trust-bundle.pem"
			if rev == tlsconfig.RevisionSPIFFEFS {
				tbSuffix = ".spiffe-trust-bundle.x509.pem"
			}
			svidFiles := []string{credNames[rev]}
			if rev == tlsconfig.RevisionSPIFFEFS {
				svidFiles = append(svidFiles, "1."+credNames[rev])
			}
			var svids []*x509svid.SVID
			for _, name := range svidFiles {
				data, err := os.ReadFile(filepath.Join(fixture, name))
				if err != nil {
					t.Fatal(err)
				}
				s, err := x509svid.Parse(data, data)
				if err != nil {
					t.Fatal(err)
				}
				svids = append(svids, s)
			}
			svids[0].Hint = "internal"
			var bundles []*x509bundle.Bundle
			for _, td := range []spiffeid.TrustDomain{tdExample, tdOther} {
				b, err := x509bundle.Load(td, filepath.Join(fixture, td.Name()+tbSuffix))
				if err != nil {
					t.Fatal(err)
				}
				bundles = append(bundles, b)
			}
			dir := t.TempDir()
			set := &hostapi.CredentialSet{Name: "test", TrustDomain: tdExample, Credentials: hostapi.Credentials{
				X509SVIDs: svids, X509Bundles: x509bundle.NewSet(bundles...),
			}}
			if _, err := newWriter(t, dir, string(rev)).Write(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			des, err := os.ReadDir(fixture)
			if err != nil {
				t.Fatal(err)
			}
			for _, de := range des {
				want, _ := os.ReadFile(filepath.Join(fixture, de.Name()))
				got, err := os.ReadFile(filepath.Join(dir, de.Name()))
				if err != nil || string(got) != string(want) {
					t.Errorf("%s differs from the fixture (%v):\n%s\nwant\n%s", de.Name(), err, got, want)
				}
			}
		})
	}
}
