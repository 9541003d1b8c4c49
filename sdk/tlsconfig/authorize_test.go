package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/internal/testca"
	"github.com/svidagent/svidagent/plugins/files"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

func TestAuthorization(t *testing.T) {
	caA, caB := testca.New(t, tdA), testca.New(t, tdB)
	serverID := spiffeid.RequireFromPath(tdA, "/server")
	clientA := spiffeid.RequireFromPath(tdA, "/client")
	clientB := spiffeid.RequireFromPath(tdB, "/client")

	serverDir := t.TempDir()
	write(t, newWriter(t, serverDir, files.LayoutSPIFFEFS), caA.X509SVID(t, serverID), caA.X509Bundle(), caB.X509Bundle())
	ssrc := newSource(t, tlsconfig.WithDir(serverDir))

	// client returns a Source for an SVID of id signed by ca, trusting
	// both real trust domains; ownBundle is the bundle the client holds
	// for its own trust domain (a forger holds its forging CA's).
	client := func(t *testing.T, id spiffeid.ID, ca *testca.CA) *tlsconfig.Source {
		dir := t.TempDir()
		own := x509bundle.FromX509Authorities(id.TrustDomain(), ca.X509Bundle().X509Authorities())
		bundles := []*x509bundle.Bundle{own}
		if id.TrustDomain() != tdA {
			bundles = append(bundles, caA.X509Bundle())
		}
		write(t, newWriter(t, dir, files.LayoutSPIFFEFS), ca.X509SVID(t, id), bundles...)
		return newSource(t, tlsconfig.WithDir(dir))
	}

	tests := []struct {
		name       string
		serverAuth tlsconfig.Authorizer
		clientAuth tlsconfig.Authorizer // default: AuthorizeID(serverID)
		blindly    bool                 // the client does not verify the server (a forger)
		id         spiffeid.ID
		ca         *testca.CA
		wantErr    string // "" for success; matched in the server's error
	}{
		{name: "exact ID", serverAuth: tlsconfig.AuthorizeID(clientA), id: clientA, ca: caA},
		{name: "exact ID, other peer", serverAuth: tlsconfig.AuthorizeID(spiffeid.RequireFromPath(tdA, "/other")), id: clientA, ca: caA, wantErr: "unexpected ID"},
		{name: "one of", serverAuth: tlsconfig.AuthorizeOneOf(clientB, clientA), id: clientA, ca: caA},
		{name: "trust domain", serverAuth: tlsconfig.AuthorizeMemberOf(tdA), id: clientA, ca: caA},
		{name: "trust domain, other", serverAuth: tlsconfig.AuthorizeMemberOf(tdA), id: clientB, ca: caB, wantErr: "unexpected trust domain"},
		{name: "federated trust domain", serverAuth: tlsconfig.AuthorizeMemberOf(tdB), id: clientB, ca: caB},
		{name: "predicate", serverAuth: tlsconfig.AuthorizeFunc(func(id spiffeid.ID) bool { return strings.HasPrefix(id.Path(), "/cli") }), id: clientA, ca: caA},
		{name: "predicate denies", serverAuth: tlsconfig.AuthorizeFunc(func(spiffeid.ID) bool { return false }), id: clientA, ca: caA, wantErr: "is not authorized"},
		{name: "nil authorizer denies", serverAuth: nil, id: clientA, ca: caA, wantErr: "no authorizer configured"},
		{name: "client checks the server", serverAuth: tlsconfig.AuthorizeAny(), clientAuth: tlsconfig.AuthorizeID(spiffeid.RequireFromPath(tdA, "/not-server")), id: clientA, ca: caA, wantErr: "client"},
		// Bundles are never pooled: an ID of b.example signed by
		// a.example's CA is checked against b.example's bundle only.
		{name: "b.example ID signed by a.example", serverAuth: tlsconfig.AuthorizeAny(), id: spiffeid.RequireFromPath(tdB, "/forged"), ca: caA, wantErr: "certificate signed by unknown authority"},
		{name: "a.example ID signed by b.example", serverAuth: tlsconfig.AuthorizeAny(), id: spiffeid.RequireFromPath(tdA, "/forged"), ca: caB, blindly: true, wantErr: "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tlsconfig.ServerConfig(ssrc, tt.serverAuth))
			csrc := client(t, tt.id, tt.ca)
			clientAuth := tt.clientAuth
			if clientAuth == nil {
				clientAuth = tlsconfig.AuthorizeID(serverID)
			}
			cfg := tlsconfig.ClientConfig(csrc, clientAuth)
			if tt.blindly {
				cfg.VerifyPeerCertificate = nil // InsecureSkipVerify is set
			}
			_, err := dial(srv.addr(), cfg)
			serverErr := srv.result(t)
			if tt.wantErr == "" {
				if err != nil || serverErr != nil {
					t.Fatalf("handshake failed: client: %v, server: %v", err, serverErr)
				}
				return
			}
			if err == nil {
				t.Fatal("handshake succeeded, want it refused")
			}
			if tt.wantErr == "client" {
				if !strings.Contains(err.Error(), "unexpected ID") {
					t.Errorf("client error = %v, want the client's authorizer to refuse", err)
				}
				return
			}
			if serverErr == nil || !strings.Contains(serverErr.Error(), tt.wantErr) {
				t.Errorf("server error = %v, want one containing %q", serverErr, tt.wantErr)
			}
		})
	}
}

func TestDefederation(t *testing.T) {
	caA, caB := testca.New(t, tdA), testca.New(t, tdB)
	serverID := spiffeid.RequireFromPath(tdA, "/server")
	serverDir := t.TempDir()
	sw := newWriter(t, serverDir, files.LayoutSPIFFEFS)
	serverSVID := caA.X509SVID(t, serverID)
	write(t, sw, serverSVID, caA.X509Bundle(), caB.X509Bundle())
	ssrc := newSource(t, tlsconfig.WithDir(serverDir))
	srv := startServer(t, tlsconfig.ServerConfig(ssrc, tlsconfig.AuthorizeAny()))

	clientDir := t.TempDir()
	write(t, newWriter(t, clientDir, files.LayoutSPIFFEFS), caB.X509SVID(t, spiffeid.RequireFromPath(tdB, "/client")), caB.X509Bundle(), caA.X509Bundle())
	cli := tlsconfig.ClientConfig(newSource(t, tlsconfig.WithDir(clientDir)), tlsconfig.AuthorizeID(serverID))

	if _, err := dial(srv.addr(), cli); err != nil {
		t.Fatalf("federated handshake: %v", err)
	}
	if err := srv.result(t); err != nil {
		t.Fatalf("federated handshake, server: %v", err)
	}

	// De-federate: the writer removes b.example's trust bundle file.
	write(t, sw, serverSVID, caA.X509Bundle())
	waitUntil(t, ssrc, "b.example's bundle is gone", func() bool {
		_, err := ssrc.GetX509BundleForTrustDomain(tdB)
		return err != nil
	})
	if _, err := dial(srv.addr(), cli); err == nil {
		t.Fatal("handshake from a de-federated trust domain succeeded")
	}
	if err := srv.result(t); err == nil || !strings.Contains(err.Error(), `no X.509 bundle for trust domain "b.example"`) {
		t.Errorf("server error = %v, want one about b.example's missing bundle", err)
	}

	// Re-federate.
	write(t, sw, serverSVID, caA.X509Bundle(), caB.X509Bundle())
	waitUntil(t, ssrc, "b.example's bundle is back", bundleIs(ssrc, caB.X509Bundle()))
	if _, err := dial(srv.addr(), cli); err != nil {
		t.Fatalf("handshake after re-federation: %v", err)
	}
	if err := srv.result(t); err != nil {
		t.Fatalf("handshake after re-federation, server: %v", err)
	}
}

func TestConfigsRequireTLS13(t *testing.T) {
	ca := testca.New(t, tdA)
	id := spiffeid.RequireFromPath(tdA, "/web")
	dir := t.TempDir()
	write(t, newWriter(t, dir, files.LayoutSPIFFEFS), ca.X509SVID(t, id), ca.X509Bundle())
	src := newSource(t, tlsconfig.WithDir(dir))

	for _, cfg := range []*tls.Config{tlsconfig.ServerConfig(src, tlsconfig.AuthorizeAny()), tlsconfig.ClientConfig(src, tlsconfig.AuthorizeAny())} {
		if cfg.MinVersion != tls.VersionTLS13 {
			t.Errorf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
		}
	}
	srv := startServer(t, tlsconfig.ServerConfig(src, tlsconfig.AuthorizeAny()))
	old := tlsconfig.ClientConfig(src, tlsconfig.AuthorizeAny())
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := dial(srv.addr(), old); err == nil {
		t.Error("a TLS 1.2 client was accepted")
	}
	if _, err := dial(srv.addr(), tlsconfig.ClientConfig(src, tlsconfig.AuthorizeAny())); err != nil {
		t.Errorf("TLS 1.3 handshake: %v", err)
	}
}

func TestAuthorizeFunc(t *testing.T) {
	id := spiffeid.RequireFromPath(tdA, "/web")
	tests := []struct {
		name  string
		allow func(spiffeid.ID) bool
		ok    bool
	}{
		{name: "allows", allow: func(got spiffeid.ID) bool { return got == id }, ok: true},
		{name: "denies", allow: func(spiffeid.ID) bool { return false }},
		{name: "nil denies", allow: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tlsconfig.AuthorizeFunc(tt.allow)(id, [][]*x509.Certificate{})
			if (err == nil) != tt.ok {
				t.Errorf("error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
