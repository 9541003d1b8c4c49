package files_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/plugins/files"
)

func ExampleNew() {
	dir, _ := os.MkdirTemp("", "svid")
	defer os.RemoveAll(dir)

	cfg := files.DefaultConfig()
	cfg.Dir = dir
	cfg.JWTBundleFileName = "jwt_bundle.json"
	w, err := files.New(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// A set with only an (empty) JWT bundle.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	set := &hostapi.CredentialSet{Name: "web", TrustDomain: td}
	set.JWTBundles = jwtbundle.NewSet(jwtbundle.New(td))
	res, err := w.Write(context.Background(), set)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range res.Paths {
		b, _ := os.ReadFile(p)
		fmt.Printf("%s: %s\n", filepath.Base(p), b)
	}
	// Output:
	// jwt_bundle.json: {"example.org":"eyJrZXlzIjpbXX0="}
}

func ExampleIndexedName() {
	for i := range 3 {
		fmt.Println(files.IndexedName("svid.pem", i), files.IndexedName("svid_key.pem", i))
	}
	// Output:
	// svid.pem svid_key.pem
	// svid_1.pem svid_key_1.pem
	// svid_2.pem svid_key_2.pem
}

func ExampleConfig_Validate() {
	cfg := files.DefaultConfig()
	cfg.Dir = "/run/svid"
	cfg.KeyFileMode = 0o1000
	fmt.Println(cfg.Validate())
	// Output:
	// key_file_mode: mode 01000 is over 0777; use an octal permission such as 0644
}
