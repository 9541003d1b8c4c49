package tlsconfig

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// pemBlock is one PEM block of a file and the byte offset of its
// "-----BEGIN" line.
type pemBlock struct {
	*pem.Block
	offset int
}

// decodeStrict splits data into PEM blocks as the SPIFFE Filesystem
// Delivery draft (sections 2.1 and 2.2) allows them: blocks with no PEM
// headers and no inter-block data. Whitespace between and around blocks is
// tolerated; any other byte is an error naming its offset.
func decodeStrict(data []byte) ([]pemBlock, error) {
	var out []pemBlock
	begin, end := []byte("-----BEGIN "), []byte("-----END ")
	for p := 0; ; {
		for p < len(data) && isSpace(data[p]) {
			p++
		}
		if p == len(data) {
			return out, nil
		}
		if !bytes.HasPrefix(data[p:], begin) {
			return nil, fmt.Errorf("byte %d: data outside a PEM block, which the draft forbids (\"MUST NOT contain any inter-block data\"); the file may be half written", p)
		}
		e := bytes.Index(data[p:], end)
		if e < 0 {
			return nil, fmt.Errorf("byte %d: PEM block has no END line; the file may be half written", p)
		}
		stop := p + e
		if nl := bytes.IndexByte(data[stop:], '\n'); nl >= 0 {
			stop += nl + 1
		} else {
			stop = len(data)
		}
		block, rest := pem.Decode(data[p:stop])
		if block == nil || len(bytes.TrimSpace(rest)) > 0 {
			return nil, fmt.Errorf("byte %d: malformed PEM block", p)
		}
		if len(block.Headers) > 0 {
			return nil, fmt.Errorf("byte %d: %s block has PEM headers, which the draft forbids (\"MUST NOT contain any PEM blocks that have PEM headers\")", p, block.Type)
		}
		out = append(out, pemBlock{Block: block, offset: p})
		p = stop
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// parseCredentialBundle parses the draft's credential bundle (section
// 2.1): a PKCS#8 PRIVATE KEY block, then one or more CERTIFICATE blocks in
// leaf-to-root order, whose leaf is issued to the key.
func parseCredentialBundle(data []byte) (*x509svid.SVID, error) {
	blocks, err := decodeStrict(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("it is empty")
	}
	if blocks[0].Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("byte %d: the first PEM block is %q, want \"PRIVATE KEY\"", blocks[0].offset, blocks[0].Type)
	}
	if len(blocks) == 1 {
		return nil, fmt.Errorf("it has a key but no certificate; the draft wants two or more PEM blocks")
	}
	var raw []byte
	var certs []*x509.Certificate
	for _, b := range blocks[1:] {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("byte %d: PEM block is %q, want \"CERTIFICATE\" (\"MUST NOT contain any other PEM block types\")", b.offset, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("byte %d: parsing the certificate: %w", b.offset, err)
		}
		certs = append(certs, c)
		raw = append(raw, b.Bytes...)
	}
	// "in leaf-to-root order": each certificate is issued by the next.
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return nil, fmt.Errorf("byte %d: the certificate is not issued by the next one; the draft wants the chain in leaf-to-root order: %w", blocks[i+1].offset, err)
		}
	}
	return x509svid.ParseRaw(raw, blocks[0].Bytes)
}

// parseTrustBundle parses a draft trust bundle file (section 2.2): one or
// more CERTIFICATE blocks and nothing else.
func parseTrustBundle(td spiffeid.TrustDomain, data []byte) (*x509bundle.Bundle, error) {
	blocks, err := decodeStrict(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("it holds no certificate; the draft wants \"one or more PEM CERTIFICATE blocks\"")
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("byte %d: PEM block is %q, want \"CERTIFICATE\" (\"MUST NOT contain any other PEM block types\")", b.offset, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("byte %d: parsing the certificate: %w", b.offset, err)
		}
		certs = append(certs, c)
	}
	return x509bundle.FromX509Authorities(td, certs), nil
}
