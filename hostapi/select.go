package hostapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// X509Index picks the X509-SVIDs an IssueRequest asks for among those an
// issuer offers. It is the one definition of X.509 selection: the agent
// applies it to what an issuer returns for an svid block, and an issuer
// that offers several identities (the Workload API) applies it to what it
// offers. Built once, it answers each selection in O(matches) instead of
// a scan of every SVID, so that N subscribers selecting among N SVIDs
// cost O(N), not O(N²).
//
// The selection reads req.SPIFFEID, req.Hint and req.All, and keeps the
// order offered:
//   - an SVID matches when its ID equals req.SPIFFEID (if set) and its
//     hint equals req.Hint (if set);
//   - with req.All, every match; else the first match.
//
// An X509Index is immutable and safe for concurrent use. The SVIDs it
// returns are shared and must not be modified; the slice is the caller's.
type X509Index struct {
	svids    []*x509svid.SVID
	byID     map[spiffeid.ID]int // the first SVID with the ID
	nextID   []int               // the next SVID with the same ID, or -1
	byHint   map[string]int      // the first SVID with the hint
	nextHint []int               // the next SVID with the same hint, or -1
}

// NewX509Index indexes offered for [X509Index.Select]. offered is not
// copied; the caller does not modify it afterwards.
func NewX509Index(offered []*x509svid.SVID) *X509Index {
	x := &X509Index{
		svids:    offered,
		byID:     make(map[spiffeid.ID]int, len(offered)),
		nextID:   make([]int, len(offered)),
		byHint:   map[string]int{},
		nextHint: make([]int, len(offered)),
	}
	// Backwards, so that each chain starts at the first SVID offered.
	for i := len(offered) - 1; i >= 0; i-- {
		s := offered[i]
		x.nextID[i], x.nextHint[i] = -1, -1
		if j, ok := x.byID[s.ID]; ok {
			x.nextID[i] = j
		}
		x.byID[s.ID] = i
		if s.Hint != "" {
			if j, ok := x.byHint[s.Hint]; ok {
				x.nextHint[i] = j
			}
			x.byHint[s.Hint] = i
		}
	}
	return x
}

// SelectX509 is NewX509Index(offered).Select(req), for a single selection.
func SelectX509(offered []*x509svid.SVID, req *IssueRequest) ([]*x509svid.SVID, error) {
	return NewX509Index(offered).Select(req)
}

// Select returns the X509-SVIDs req asks for (see [X509Index]). When none
// matches, the error names what was asked and lists what is offered, and
// tells the operator what to check.
func (x *X509Index) Select(req *IssueRequest) ([]*x509svid.SVID, error) {
	var out []*x509svid.SVID
	match := func(j int) bool { return req.Hint == "" || x.svids[j].Hint == req.Hint }
	switch {
	case !req.SPIFFEID.IsZero():
		if j, ok := x.byID[req.SPIFFEID]; ok {
			for ; j >= 0; j = x.nextID[j] {
				if match(j) {
					out = append(out, x.svids[j])
					if !req.All {
						break
					}
				}
			}
		}
	case req.Hint != "":
		if j, ok := x.byHint[req.Hint]; ok {
			for ; j >= 0; j = x.nextHint[j] {
				out = append(out, x.svids[j])
				if !req.All {
					break
				}
			}
		}
	case req.All:
		out = slices.Clone(x.svids)
	case len(x.svids) > 0:
		out = []*x509svid.SVID{x.svids[0]}
	}
	if len(out) == 0 {
		return nil, x.notFound(req)
	}
	return out, nil
}

func (x *X509Index) notFound(req *IssueRequest) error {
	offered := make([]string, 0, len(x.svids))
	for _, s := range x.svids {
		if s.Hint != "" {
			offered = append(offered, fmt.Sprintf("%s (hint %q)", s.ID, s.Hint))
		} else {
			offered = append(offered, s.ID.String())
		}
	}
	list := strings.Join(offered, ", ")
	switch {
	case !req.SPIFFEID.IsZero() && req.Hint != "":
		return fmt.Errorf("no X509-SVID with SPIFFE ID %q and hint %q among [%s]; check spiffe_id and hint", req.SPIFFEID, req.Hint, list)
	case !req.SPIFFEID.IsZero():
		return fmt.Errorf("no X509-SVID with SPIFFE ID %q among [%s]; check spiffe_id", req.SPIFFEID, list)
	case req.Hint != "":
		return fmt.Errorf("no X509-SVID with hint %q among [%s]; check hint", req.Hint, list)
	default:
		return fmt.Errorf("no X509-SVID offered; check the issuer and the workload's registration entries")
	}
}
