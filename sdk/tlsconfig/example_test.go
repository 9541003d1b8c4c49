package tlsconfig_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/sdk/tlsconfig"
)

// A service that serves mTLS to its own trust domain and calls one peer,
// with credentials from the folder in $SPIFFE_CREDENTIAL_FOLDER.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := tlsconfig.NewSource(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	td := spiffeid.RequireTrustDomainFromString("example.org")
	server := &http.Server{
		Addr:      ":8443",
		TLSConfig: tlsconfig.ServerConfig(src, tlsconfig.AuthorizeMemberOf(td)),
	}
	go func() { _ = server.ListenAndServeTLS("", "") }()

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: tlsconfig.ClientConfig(src, tlsconfig.AuthorizeID(spiffeid.RequireFromPath(td, "/billing"))),
	}}
	_, _ = client.Get("https://billing.internal:8443/")
}

func ExampleNewSource_noFolder() {
	// Without WithDir, the folder comes from SPIFFE_CREDENTIAL_FOLDER.
	_, err := tlsconfig.NewSource(context.Background(), tlsconfig.WithDir(""))
	fmt.Println(err)
	// Output:
	// locating the credential folder: none given; pass WithDir or set SPIFFE_CREDENTIAL_FOLDER
}

func ExampleNewSource_options() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// spiffe-helper's layout with custom names, e.g. from a helper.conf.
	src, err := tlsconfig.NewSource(ctx,
		tlsconfig.WithDir("/run/svid/web"),
		tlsconfig.WithLayout(tlsconfig.LayoutSPIFFEHelper),
		tlsconfig.WithFileNames("tls.crt", "tls.key", "ca.crt"),
		tlsconfig.WithDebounce(50*time.Millisecond),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	for range src.Updated() {
		svid, _ := src.GetX509SVID()
		fmt.Println("rotated to", svid.Certificates[0].SerialNumber)
	}
}

func ExampleAuthorizeFunc() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	onlyAdmins := tlsconfig.AuthorizeFunc(func(id spiffeid.ID) bool {
		return id.MemberOf(td) && id.Path() == "/admin"
	})
	fmt.Println(onlyAdmins(spiffeid.RequireFromPath(td, "/admin"), [][]*x509.Certificate{}))
	fmt.Println(onlyAdmins(spiffeid.RequireFromPath(td, "/web"), [][]*x509.Certificate{}))
	// Output:
	// <nil>
	// tlsconfig: peer "spiffe://example.org/web" is not authorized
}

func ExampleLayout_String() {
	for _, l := range []tlsconfig.Layout{tlsconfig.LayoutAuto, tlsconfig.LayoutSPIFFEHelper, tlsconfig.LayoutSPIFFEFS} {
		fmt.Println(l)
	}
	// Output:
	// auto
	// spiffe-helper
	// spiffe-fs
}
