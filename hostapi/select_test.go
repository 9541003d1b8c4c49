package hostapi_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi"
)

func TestSelectX509(t *testing.T) {
	a := spiffeid.RequireFromString("spiffe://example.org/a")
	b := spiffeid.RequireFromString("spiffe://example.org/b")
	c := spiffeid.RequireFromString("spiffe://example.org/c")
	s := []*x509svid.SVID{
		{ID: a}, {ID: b, Hint: "h1"}, {ID: a, Hint: "h2"}, {ID: b, Hint: "h2"}, {ID: a, Hint: "h1"},
	}
	const offered = `[spiffe://example.org/a, spiffe://example.org/b (hint "h1"), spiffe://example.org/a (hint "h2"), spiffe://example.org/b (hint "h2"), spiffe://example.org/a (hint "h1")]`
	tests := []struct {
		name    string
		offered []*x509svid.SVID
		req     hostapi.IssueRequest
		want    []int // indexes into offered
		wantErr string
	}{
		{name: "first", offered: s, want: []int{0}},
		{name: "all", offered: s, req: hostapi.IssueRequest{All: true}, want: []int{0, 1, 2, 3, 4}},
		{name: "by ID", offered: s, req: hostapi.IssueRequest{SPIFFEID: b}, want: []int{1}},
		{name: "all by ID", offered: s, req: hostapi.IssueRequest{SPIFFEID: a, All: true}, want: []int{0, 2, 4}},
		{name: "by ID and hint", offered: s, req: hostapi.IssueRequest{SPIFFEID: a, Hint: "h1"}, want: []int{4}},
		{name: "all by ID and hint", offered: s, req: hostapi.IssueRequest{SPIFFEID: b, Hint: "h2", All: true}, want: []int{3}},
		{name: "by hint", offered: s, req: hostapi.IssueRequest{Hint: "h2"}, want: []int{2}},
		{name: "all by hint", offered: s, req: hostapi.IssueRequest{Hint: "h1", All: true}, want: []int{1, 4}},
		{name: "unknown ID", offered: s, req: hostapi.IssueRequest{SPIFFEID: c},
			wantErr: `no X509-SVID with SPIFFE ID "spiffe://example.org/c" among ` + offered + `; check spiffe_id`},
		{name: "unknown ID and hint", offered: s, req: hostapi.IssueRequest{SPIFFEID: b, Hint: "h3"},
			wantErr: `no X509-SVID with SPIFFE ID "spiffe://example.org/b" and hint "h3" among ` + offered + `; check spiffe_id and hint`},
		{name: "unknown hint", offered: s, req: hostapi.IssueRequest{Hint: "h3", All: true},
			wantErr: `no X509-SVID with hint "h3" among ` + offered + `; check hint`},
		{name: "none offered", wantErr: "no X509-SVID offered; check the issuer and the workload's registration entries"},
		{name: "none offered, all", req: hostapi.IssueRequest{All: true}, wantErr: "no X509-SVID offered; check the issuer and the workload's registration entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []*x509svid.SVID
			for _, i := range tt.want {
				want = append(want, tt.offered[i])
			}
			x := hostapi.NewX509Index(tt.offered)
			for _, sel := range []func(*hostapi.IssueRequest) ([]*x509svid.SVID, error){
				x.Select,
				func(r *hostapi.IssueRequest) ([]*x509svid.SVID, error) { return hostapi.SelectX509(tt.offered, r) },
			} {
				got, err := sel(&tt.req)
				if fmt.Sprint(err) != fmt.Sprint(errOrNil(tt.wantErr)) || !slices.Equal(got, want) {
					t.Errorf("Select(%+v) = %v, %v; want %v, %s", tt.req, got, err, want, tt.wantErr)
				}
			}
		})
	}
}

func errOrNil(s string) error {
	if s == "" {
		return nil
	}
	return fmt.Errorf("%s", s)
}

func ExampleSelectX509() {
	web := spiffeid.RequireFromString("spiffe://example.org/web")
	db := spiffeid.RequireFromString("spiffe://example.org/db")
	offered := []*x509svid.SVID{{ID: web}, {ID: db, Hint: "internal"}, {ID: db, Hint: "backup"}}

	svids, err := hostapi.SelectX509(offered, &hostapi.IssueRequest{SPIFFEID: db, Hint: "backup"})
	fmt.Println(svids[0].ID, svids[0].Hint, err)
	_, err = hostapi.SelectX509(offered, &hostapi.IssueRequest{Hint: "external"})
	fmt.Println(err)
	// Output:
	// spiffe://example.org/db backup <nil>
	// no X509-SVID with hint "external" among [spiffe://example.org/web, spiffe://example.org/db (hint "internal"), spiffe://example.org/db (hint "backup")]; check hint
}
