package adapter

import (
	"context"
	"fmt"

	"github.com/svidagent/svidagent/hostapi"
	issuerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/issuer/v1"
	notifierv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/notifier/v1"
	writerv1 "github.com/svidagent/svidagent/hostapi/proto/svidagent/plugin/writer/v1"
	"github.com/svidagent/svidagent/internal/wire"
)

// issuerV1 speaks svidagent.plugin.issuer.v1.Issuer.
type issuerV1 struct{ p *Plugin }

func (i *issuerV1) Issue(ctx context.Context, req *hostapi.IssueRequest) (*hostapi.Credentials, error) {
	resp := &issuerv1.IssueResponse{}
	if err := i.p.call(ctx, "issuing", MethodIssue, wire.IssueRequestToProto(req), resp); err != nil {
		return nil, err
	}
	if !i.p.info.HasCapability(CapabilityIssuerReturnsKeys) {
		for _, s := range resp.GetX509Svids() {
			if len(s.GetPrivateKey()) > 0 {
				return nil, fmt.Errorf("issuing through plugin %q: the plugin returned a private key for %s but does not declare the capability %q; the agent generates keys itself and refuses keys it did not ask for: the plugin must sign the request's CSR, or declare %q",
					i.p.s.Name, s.GetSpiffeId(), CapabilityIssuerReturnsKeys, CapabilityIssuerReturnsKeys)
			}
		}
	}
	creds, err := wire.IssueResponseToCredentials(resp, req)
	if err != nil {
		return nil, fmt.Errorf("issuing through plugin %q: %w", i.p.s.Name, err)
	}
	return creds, nil
}

// writerV1 speaks svidagent.plugin.writer.v1.Writer. Writers are the only
// plugins that receive private keys.
type writerV1 struct{ p *Plugin }

func (w *writerV1) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	req, err := wire.CredentialSetToProto(set)
	if err != nil {
		return nil, fmt.Errorf("writing through plugin %q: %w", w.p.s.Name, err)
	}
	resp := &writerv1.WriteResponse{}
	if err := w.p.call(ctx, "writing", MethodWrite, req, resp); err != nil {
		return nil, err
	}
	paths := resp.GetPaths()
	if w.p.paths != nil {
		if paths, err = w.p.paths.HostPaths(paths); err != nil {
			return nil, fmt.Errorf("writing through plugin %q: %w", w.p.s.Name, err)
		}
	}
	return &hostapi.WriteResult{Paths: paths}, nil
}

// notifierV1 speaks svidagent.plugin.notifier.v1.Notifier. What it sends
// carries no key material and no tokens: RotationEvent has none.
type notifierV1 struct{ p *Plugin }

func (n *notifierV1) Notify(ctx context.Context, ev *hostapi.RotationEvent) error {
	return n.p.call(ctx, "notifying", MethodNotify, wire.RotationEventToProto(ev), &notifierv1.NotifyResponse{})
}
