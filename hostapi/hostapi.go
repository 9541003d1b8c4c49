package hostapi

import (
	"context"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/svidagent/svidagent/hostapi/base"
)

// Kind is the kind of a plugin.
type Kind = base.Kind

const (
	KindIssuer   = base.KindIssuer
	KindWriter   = base.KindWriter
	KindNotifier = base.KindNotifier
)

// JWTRequest asks for one JWT-SVID.
type JWTRequest struct {
	// Audience is the token's first audience. Required.
	Audience string
	// ExtraAudiences are further audiences of the same token.
	ExtraAudiences []string
	// FileName is the name under which writers deliver the token (a file
	// name for file writers, a key for secret stores). Required.
	FileName string
}

// Audiences returns Audience followed by ExtraAudiences.
func (r JWTRequest) Audiences() []string {
	return append([]string{r.Audience}, r.ExtraAudiences...)
}

// Key identifies the audience set; two requests with the same key ask for
// the same token.
func (r JWTRequest) Key() string { return strings.Join(r.Audiences(), "\x00") }

// IssueRequest is what the core asks an issuer for.
type IssueRequest struct {
	// SPIFFEID is the identity wanted. For an issuer that chooses identities
	// itself (the Workload API), a non-zero SPIFFEID selects among them.
	SPIFFEID spiffeid.ID
	// Hint selects an X509-SVID by its hint, when the issuer offers several.
	Hint string
	// All asks for every X509-SVID the issuer offers, not only the first
	// match.
	All bool

	// X509 asks for X509-SVIDs and the X.509 bundles.
	X509 bool
	// CSR is a DER PKCS#10 request signed with a key the core generated.
	// Present when X509 is set, except for an issuer that is also a
	// [Watcher]: a pushing issuer owns its keys (Watch has no request to
	// sign), so the core makes none for it. An issuer that signs the CSR
	// returns the chain with a nil PrivateKey and the core attaches its
	// key; the key never leaves the agent. An issuer that owns its keys
	// (the Workload API) ignores it.
	CSR []byte
	// TTL is the lifetime wanted. Zero leaves it to the issuer.
	TTL time.Duration

	// JWT asks for these JWT-SVIDs and the JWT bundles.
	JWT []JWTRequest
	// JWTBundles asks for the JWT bundles even when JWT is empty.
	JWTBundles bool
}

// JWTSVID is a JWT-SVID with the request it answers.
type JWTSVID struct {
	Request JWTRequest
	SVID    *jwtsvid.SVID
}

// Credentials is what an issuer returns. In an update delivered by a
// [Watcher], a nil field means "unchanged since the last update".
type Credentials struct {
	// X509SVIDs are leaf-first chains; the first is the default identity.
	// PrivateKey is nil when the issuer signed the request's CSR.
	X509SVIDs []*x509svid.SVID
	// X509Bundles holds the bundle of every trust domain the issuer
	// knows: its own and the federated ones.
	X509Bundles *x509bundle.Set
	// JWTSVIDs answer the request's JWT list.
	JWTSVIDs []JWTSVID
	// JWTBundles holds the JWT bundles of every trust domain.
	JWTBundles *jwtbundle.Set
}

// Issuer is where credentials come from.
//
// Issue is called by the one-shot fetch and by the core's renewal
// scheduler, which renews at a configured fraction of the lifetime with
// jittered backoff on failure; an issuer does not schedule itself. An error
// leaves the previous credentials in place.
type Issuer interface {
	Issue(ctx context.Context, req *IssueRequest) (*Credentials, error)
}

// Watcher is an optional capability of an issuer that pushes updates
// (the Workload API's streams). Watch blocks until ctx is done, calling
// update with each change to the X.509 credentials and the JWT bundles;
// JWT-SVIDs are still fetched through Issue on the core's schedule. Watch
// retries transient failures itself and calls report with each error, so
// that health can reflect it; it returns only when ctx is done or on an
// error that retrying cannot fix.
type Watcher interface {
	Watch(ctx context.Context, req *IssueRequest, update func(*Credentials), report func(error)) error
}

// Changes is the set of credential parts that changed in an update.
type Changes = base.Changes

const (
	// ChangedX509 is set when an X509-SVID or an X.509 bundle changed.
	ChangedX509 = base.ChangedX509
	// ChangedJWTSVID is set when a JWT-SVID was renewed.
	ChangedJWTSVID = base.ChangedJWTSVID
	// ChangedJWTBundle is set when a JWT bundle changed.
	ChangedJWTBundle = base.ChangedJWTBundle
)

// ParseChange returns the Changes named by s: "x509", "jwt_svid" or
// "jwt_bundle".
func ParseChange(s string) (Changes, bool) { return base.ParseChange(s) }

// CredentialSet is the complete, verified set a writer delivers for one
// svid block. Writers are the only plugins that see private keys.
type CredentialSet struct {
	// Name is the svid block's name.
	Name string
	// TrustDomain is the trust domain of the default X509-SVID (or, with
	// no X509-SVID, of the first JWT-SVID). Bundles of other trust domains
	// are federated.
	TrustDomain spiffeid.TrustDomain
	Credentials
	// Changed says which parts changed since the last write. A writer may
	// skip unchanged parts, but must deliver everything on the first call.
	Changed Changes
}

// WriteResult reports what a writer delivered.
type WriteResult struct {
	// Paths are the files (or keys) written, in a stable order.
	Paths []string
}

// Writer delivers credentials. Write replaces everything it writes
// atomically; when it fails, what was delivered before is left intact.
type Writer interface {
	Write(ctx context.Context, set *CredentialSet) (*WriteResult, error)
}

// X509Identity describes one delivered X509-SVID, without key material.
type X509Identity = base.X509Identity

// JWTIdentity describes one delivered JWT-SVID, without the token.
type JWTIdentity = base.JWTIdentity

// RotationEvent tells a notifier that credentials were delivered. It never
// carries key material or tokens.
type RotationEvent = base.RotationEvent

// Notifier tells consumers about a rotation. Notify runs after every writer
// of the svid block finished, with a deadline; notifiers run concurrently
// and a slow one delays no other.
type Notifier = base.Notifier

// Lifecycle is an optional capability of a plugin that runs background work
// (a token renewal loop, say). Start must not block: it starts the work and
// returns; an error means nothing was started. Stop blocks until the work
// has exited, and is safe to call more than once or without Start.
type Lifecycle = base.Lifecycle
