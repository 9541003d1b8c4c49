package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
	pluginv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/v1"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/wire"
	"google.golang.org/protobuf/proto"
)

// atomicWrites is the number of writes write_atomic hammers.
const atomicWrites = 200

// ttlTolerance is the slack allowed on an issued certificate's lifetime.
const ttlTolerance = time.Minute

type guardFunc func(func() outcome) func() outcome

// all reports the same outcome for several checks that share one setup.
func failAll(r reporter, guard guardFunc, names []string, o outcome) {
	for _, n := range names {
		r.check(n, guard(func() outcome { return o }))
	}
}

// hostPath is where a path a writer reported is on the host: the host
// already mapped a WASM writer's /out/... paths (adapter.PathMapper), so
// only a relative path, which a subprocess writer may report, is joined to
// the output directory.
func (s *suite) hostPath(p string) string {
	if !filepath.IsAbs(p) {
		return filepath.Join(s.t.OutputDir, p)
	}
	return p
}

func (s *suite) runWriter(ctx context.Context, r reporter, guard guardFunc) {
	p, _, err := s.opened(ctx)
	if err != nil {
		failAll(r, guard, Checks.Writer, fail("%v", err))
		return
	}
	defer p.Close()
	w := p.Writer()
	set1, err1 := s.creds.set(10)
	set2, err2 := s.creds.set(11)
	if err1 != nil || err2 != nil {
		failAll(r, guard, Checks.Writer, fail("minting test credentials: %v", cmpErr(err1, err2)))
		return
	}
	write := func(set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return w.Write(cctx, set)
	}
	var first *hostapi.WriteResult
	r.check("write_reports_paths", guard(func() outcome {
		res, err := write(set1)
		if err != nil {
			return fail("Write failed: %v", err)
		}
		first = res
		if len(res.Paths) == 0 {
			return fail("Write reported no paths; it must report what it wrote")
		}
		for _, rp := range res.Paths {
			fi, err := os.Stat(s.hostPath(rp))
			if err != nil {
				return fail("Write reported %s, which does not exist: %v", rp, err)
			}
			if !fi.Mode().IsRegular() {
				return fail("Write reported %s, which is not a regular file (%s)", rp, fi.Mode().Type())
			}
		}
		return pass()
	}))
	if first == nil {
		failAll(r, guard, Checks.Writer[1:], fail("write_reports_paths failed: nothing to compare with"))
		return
	}
	r.check("write_idempotent", guard(func() outcome {
		before, err := s.snapshot(first.Paths)
		if err != nil {
			return fail("%v", err)
		}
		res, err := write(set1)
		if err != nil {
			return fail("writing the same set again failed: %v", err)
		}
		if !slices.Equal(res.Paths, first.Paths) {
			return fail("writing the same set again reported %v; the first write reported %v", res.Paths, first.Paths)
		}
		after, err := s.snapshot(first.Paths)
		if err != nil {
			return fail("%v", err)
		}
		for _, rp := range first.Paths {
			if !bytes.Equal(before[rp], after[rp]) {
				return fail("writing the same set again changed %s", rp)
			}
		}
		return pass()
	}))
	r.check("write_modes", guard(func() outcome { return s.checkModes(first.Paths) }))
	r.check("write_atomic", guard(func() outcome {
		return s.checkAtomic(first.Paths, func(i int) error { _, err := write([]*hostapi.CredentialSet{set1, set2}[i%2]); return err })
	}))
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (s *suite) snapshot(paths []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, rp := range paths {
		b, err := os.ReadFile(s.hostPath(rp))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", rp, err)
		}
		out[rp] = b
	}
	return out, nil
}

func (s *suite) checkModes(paths []string) outcome {
	for _, rp := range paths {
		fi, err := os.Stat(s.hostPath(rp))
		if err != nil {
			return fail("%v", err)
		}
		got := fi.Mode().Perm()
		if want, ok := s.t.Modes[filepath.Base(rp)]; ok {
			if got != want.Perm() {
				return fail("%s has mode %#o; the config asks for %#o", rp, got, want.Perm())
			}
			continue
		}
		b, err := os.ReadFile(s.hostPath(rp))
		if err != nil {
			return fail("%v", err)
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) && got&0o077 != 0 {
			return fail("%s holds a private key and has mode %#o; it must be readable by its owner only", rp, got)
		}
	}
	return pass()
}

// checkAtomic hammers reads of paths while write runs atomicWrites times:
// every read must see a complete file.
func (s *suite) checkAtomic(paths []string, write func(i int) error) outcome {
	stop := make(chan struct{})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		torn  string
		reads int
	)
	for _, rp := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(s.hostPath(rp))
				problem := ""
				if err != nil {
					problem = err.Error()
				} else {
					problem = parseProblem(b)
				}
				mu.Lock()
				reads++
				if problem != "" && torn == "" {
					torn = fmt.Sprintf("a concurrent reader saw a torn %s: %s", rp, problem)
				}
				mu.Unlock()
			}
		}()
	}
	var werr error
	for i := range atomicWrites {
		if werr = write(i); werr != nil {
			werr = fmt.Errorf("write %d of %d failed: %w", i+1, atomicWrites, werr)
			break
		}
	}
	close(stop)
	wg.Wait()
	switch {
	case werr != nil:
		return fail("%v", werr)
	case torn != "":
		return fail("%s (%d reads during %d writes); replace files atomically (write a temporary file, then rename)", torn, reads, atomicWrites)
	}
	return pass()
}

// parseProblem says why b is not a complete file, or "" when it is: PEM
// files must decode block by block with nothing left over, JSON must be
// valid, and nothing may be empty.
func parseProblem(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return "empty"
	}
	if bytes.Contains(b, []byte("-----BEGIN")) {
		rest := b
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			switch blk.Type {
			case "CERTIFICATE":
				if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
					return "a CERTIFICATE block does not parse: " + err.Error()
				}
			case "PRIVATE KEY":
				if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
					return "a PRIVATE KEY block does not parse: " + err.Error()
				}
			}
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return fmt.Sprintf("%d bytes that are not a complete PEM block", len(bytes.TrimSpace(rest)))
		}
		return ""
	}
	if t := bytes.TrimSpace(b); t[0] == '{' || t[0] == '[' {
		if !json.Valid(t) {
			return "invalid JSON"
		}
	}
	return ""
}

// issueRequest is the request the issuer checks send, with the public key
// of its CSR.
func (s *suite) issueRequest() (*hostapi.IssueRequest, crypto.PublicKey, error) {
	csr, pub, err := s.creds.csr()
	if err != nil {
		return nil, nil, err
	}
	return &hostapi.IssueRequest{SPIFFEID: s.creds.id, X509: true, CSR: csr, TTL: s.t.TTL}, pub, nil
}

func (s *suite) runIssuer(ctx context.Context, r reporter, guard guardFunc) {
	p, _, err := s.opened(ctx)
	if err != nil {
		failAll(r, guard, Checks.Issuer, fail("%v", err))
		return
	}
	defer p.Close()
	returnsKeys := p.Info().HasCapability(adapter.CapabilityIssuerReturnsKeys)
	req, pub, err := s.issueRequest()
	if err != nil {
		failAll(r, guard, Checks.Issuer, fail("%v", err))
		return
	}
	issue := func() (*hostapi.Credentials, error) {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return p.Issuer().Issue(cctx, req)
	}
	start := time.Now()
	creds, err := issue()
	var leaf *x509svid.SVID
	switch {
	case err != nil:
		failAll(r, guard, Checks.Issuer[:4], fail("Issue failed: %v", err))
	case len(creds.X509SVIDs) == 0:
		failAll(r, guard, Checks.Issuer[:4], fail("Issue asked for an X509-SVID and returned none"))
	default:
		leaf = creds.X509SVIDs[0]
		r.check("issue_chain_verifies", guard(func() outcome {
			if creds.X509Bundles == nil || creds.X509Bundles.Len() == 0 {
				return fail("Issue returned no X.509 bundle to verify the chain with")
			}
			if _, _, err := x509svid.Verify(leaf.Certificates, creds.X509Bundles); err != nil {
				return fail("the returned chain does not verify against the returned bundle: %v", err)
			}
			return pass()
		}))
		r.check("issue_spiffe_id", guard(func() outcome {
			if leaf.ID != req.SPIFFEID {
				return fail("asked for %s, got an X509-SVID for %s", req.SPIFFEID, leaf.ID)
			}
			return pass()
		}))
		r.check("issue_public_key", guard(func() outcome {
			if returnsKeys {
				return skip("the issuer declares %q: it owns its keys", adapter.CapabilityIssuerReturnsKeys)
			}
			k, ok := leaf.Certificates[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !k.Equal(pub) {
				return fail("the certificate's public key is not the CSR's; an issuer must sign the CSR it was sent")
			}
			return pass()
		}))
		r.check("issue_ttl", guard(func() outcome {
			if returnsKeys {
				return skip("the issuer declares %q: it chooses its certificates' lifetimes", adapter.CapabilityIssuerReturnsKeys)
			}
			na := leaf.Certificates[0].NotAfter
			if !na.After(time.Now()) {
				return fail("the certificate expired at %s", na.Format(time.RFC3339))
			}
			if limit := start.Add(req.TTL + ttlTolerance); na.After(limit) {
				return fail("asked for a TTL of %s; the certificate lives until %s, %s past the request (tolerance %s)",
					req.TTL, na.Format(time.RFC3339), na.Sub(start.Add(req.TTL)).Round(time.Second), ttlTolerance)
			}
			return pass()
		}))
	}
	r.check("issue_backend_down", guard(func() outcome {
		if s.t.BackendDown == nil {
			return skip("no backend hook (Target.BackendDown)")
		}
		s.t.BackendDown()
		c, err := issue()
		if err == nil {
			n := 0
			if c != nil {
				n = len(c.X509SVIDs)
			}
			return fail("Issue succeeded with its backend down (%d X509-SVIDs); it must return an error", n)
		}
		return pass()
	}))
}

func (s *suite) runNotifier(ctx context.Context, r reporter, guard guardFunc) {
	r.check("notify_no_key_material", guard(func() outcome {
		sv, err := s.creds.svid(20)
		if err != nil {
			return fail("%v", err)
		}
		ev := s.creds.event(sv, []string{"/run/svidagent/svid.pem", "/run/svidagent/svid_key.pem"})
		sent, err := proto.Marshal(wire.RotationEventToProto(ev))
		if err != nil {
			return fail("encoding the event: %v", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(sv.PrivateKey)
		if err != nil {
			return fail("%v", err)
		}
		switch {
		case bytes.Contains(sent, der):
			return fail("the NotifyRequest carries the private key (PKCS#8 DER)")
		case bytes.Contains(sent, []byte("PRIVATE KEY")):
			return fail("the NotifyRequest carries a PEM private key")
		case bytes.Contains(sent, sv.Certificates[0].Raw):
			return fail("the NotifyRequest carries the certificate itself; it must carry identities only")
		}
		p, _, err := s.opened(ctx)
		if err != nil {
			return fail("%v", err)
		}
		defer p.Close()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := p.Notifier().Notify(cctx, ev); err != nil {
			return fail("Notify of a well-formed event failed: %v", err)
		}
		return pass()
	}))
	r.check("notify_errors", guard(func() outcome {
		if len(s.t.FailingConfigJSON) == 0 {
			p, inst, err := s.negotiated(ctx)
			if err != nil {
				return fail("%v", err)
			}
			defer p.Close()
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			if err := inst.conn.Invoke(cctx, adapter.MethodConfigure, &pluginv1.ConfigureRequest{ConfigJson: s.t.InvalidConfigJSON}, &pluginv1.ConfigureResponse{}); err == nil {
				return fail("Configure with the invalid config %s answered OK; it must answer an error", s.t.InvalidConfigJSON)
			}
			return pass()
		}
		p, _, err := s.open(ctx, s.t.FailingConfigJSON)
		if err != nil {
			return fail("opening the plugin with FailingConfigJSON %s: %v", s.t.FailingConfigJSON, err)
		}
		defer p.Close()
		sv, err := s.creds.svid(21)
		if err != nil {
			return fail("%v", err)
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := p.Notifier().Notify(cctx, s.creds.event(sv, nil)); err == nil {
			return fail("Notify answered OK under FailingConfigJSON %s; a failure must be reported as an error", s.t.FailingConfigJSON)
		}
		return pass()
	}))
}
