package lite

import "google.golang.org/protobuf/encoding/protowire"

// The messages of host API v1 that a plugin decodes or encodes, field for
// field as in hostapi/proto (field numbers in the comments are the
// .proto's). Each has Unmarshal, which decodes like proto.Unmarshal
// (unknown fields and known fields of another wire type are dropped;
// malformed input and invalid UTF-8 in strings are errors), and Marshal,
// which encodes like proto.MarshalOptions{Deterministic: true}.

// Marshaler is a message that encodes itself.
type Marshaler interface {
	Marshal() ([]byte, error)
}

// Empty is any message without fields: the requests and responses of
// Configure, Close, Notify and Log answers. Unmarshal only checks the
// wire format.
type Empty struct{}

func (*Empty) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		d.skip(num, typ)
	}
	return d.err
}

func (*Empty) Marshal() ([]byte, error) { return nil, nil }

// DescribeRequest is svidagent.plugin.v1.DescribeRequest.
type DescribeRequest struct {
	HostServices []string // 1
	HostVersion  string   // 2
	HostBrokerID uint32   // 3
}

func (m *DescribeRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.strings(num, typ, &m.HostServices)
		case 2:
			d.string(num, typ, &m.HostVersion)
		case 3:
			d.uint32(num, typ, &m.HostBrokerID)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *DescribeRequest) Marshal() ([]byte, error) {
	var e encoder
	e.strings(1, m.HostServices)
	e.string(2, m.HostVersion)
	e.uint32(3, m.HostBrokerID)
	return e.b, e.err
}

// DescribeResponse is svidagent.plugin.v1.DescribeResponse.
type DescribeResponse struct {
	Name              string   // 1
	Version           string   // 2
	Services          []string // 3
	Capabilities      []string // 4
	ExampleConfigJSON []byte   // 5
	// NEW DESCRIBE FIELDS GO HERE: a field added to DescribeResponse in
	// plugin.proto gets a Go field above this line, a case in Unmarshal
	// and a line in Marshal (in field-number order), and a value in
	// lite_test.go's fullDescribeResponse.
}

func (m *DescribeResponse) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Name)
		case 2:
			d.string(num, typ, &m.Version)
		case 3:
			d.strings(num, typ, &m.Services)
		case 4:
			d.strings(num, typ, &m.Capabilities)
		case 5:
			d.bytes(num, typ, &m.ExampleConfigJSON)
		// NEW DESCRIBE FIELDS: decode here.
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *DescribeResponse) Marshal() ([]byte, error) {
	var e encoder
	e.string(1, m.Name)
	e.string(2, m.Version)
	e.strings(3, m.Services)
	e.strings(4, m.Capabilities)
	e.bytes(5, m.ExampleConfigJSON)
	// NEW DESCRIBE FIELDS: encode here, in field-number order.
	return e.b, e.err
}

// ValidateRequest is svidagent.plugin.v1.ValidateRequest.
type ValidateRequest struct {
	ConfigJSON []byte // 1
}

func (m *ValidateRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.bytes(num, typ, &m.ConfigJSON)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *ValidateRequest) Marshal() ([]byte, error) {
	var e encoder
	e.bytes(1, m.ConfigJSON)
	return e.b, e.err
}

// ConfigureRequest is svidagent.plugin.v1.ConfigureRequest.
type ConfigureRequest struct {
	ConfigJSON []byte // 1
	Instance   string // 2
}

func (m *ConfigureRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.bytes(num, typ, &m.ConfigJSON)
		case 2:
			d.string(num, typ, &m.Instance)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *ConfigureRequest) Marshal() ([]byte, error) {
	var e encoder
	e.bytes(1, m.ConfigJSON)
	e.string(2, m.Instance)
	return e.b, e.err
}

// FieldError is svidagent.plugin.v1.FieldError.
type FieldError struct {
	Field   string // 1
	Message string // 2
}

func (m *FieldError) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Field)
		case 2:
			d.string(num, typ, &m.Message)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *FieldError) encode(e *encoder) {
	e.string(1, m.Field)
	e.string(2, m.Message)
}

// ValidateResponse is svidagent.plugin.v1.ValidateResponse.
type ValidateResponse struct {
	Problems []FieldError // 1
}

func (m *ValidateResponse) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.message(num, typ, func(b []byte) error {
				m.Problems = append(m.Problems, FieldError{})
				return m.Problems[len(m.Problems)-1].unmarshal(b)
			})
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *ValidateResponse) Marshal() ([]byte, error) {
	var e encoder
	for i := range m.Problems {
		e.message(1, m.Problems[i].encode)
	}
	return e.b, e.err
}

// X509SVID is svidagent.plugin.v1.X509SVID.
type X509SVID struct {
	SpiffeID   string   // 1
	CertChain  [][]byte // 2
	PrivateKey []byte   // 3
	Hint       string   // 4
}

func (m *X509SVID) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.SpiffeID)
		case 2:
			d.bytesList(num, typ, &m.CertChain)
		case 3:
			d.bytes(num, typ, &m.PrivateKey)
		case 4:
			d.string(num, typ, &m.Hint)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *X509SVID) encode(e *encoder) {
	e.string(1, m.SpiffeID)
	e.bytesList(2, m.CertChain)
	e.bytes(3, m.PrivateKey)
	e.string(4, m.Hint)
}

// X509Bundle is svidagent.plugin.v1.X509Bundle.
type X509Bundle struct {
	TrustDomain string   // 1
	Authorities [][]byte // 2
}

func (m *X509Bundle) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.TrustDomain)
		case 2:
			d.bytesList(num, typ, &m.Authorities)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *X509Bundle) encode(e *encoder) {
	e.string(1, m.TrustDomain)
	e.bytesList(2, m.Authorities)
}

// JWTSVID is svidagent.plugin.v1.JWTSVID.
type JWTSVID struct {
	SpiffeID  string   // 1
	Token     string   // 2
	Audiences []string // 3
	Expiry    int64    // 4
	FileName  string   // 5
	Hint      string   // 6
}

func (m *JWTSVID) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.SpiffeID)
		case 2:
			d.string(num, typ, &m.Token)
		case 3:
			d.strings(num, typ, &m.Audiences)
		case 4:
			d.int64(num, typ, &m.Expiry)
		case 5:
			d.string(num, typ, &m.FileName)
		case 6:
			d.string(num, typ, &m.Hint)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *JWTSVID) encode(e *encoder) {
	e.string(1, m.SpiffeID)
	e.string(2, m.Token)
	e.strings(3, m.Audiences)
	e.int64(4, m.Expiry)
	e.string(5, m.FileName)
	e.string(6, m.Hint)
}

// JWTBundle is svidagent.plugin.v1.JWTBundle.
type JWTBundle struct {
	TrustDomain string // 1
	JWKS        []byte // 2
}

func (m *JWTBundle) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.TrustDomain)
		case 2:
			d.bytes(num, typ, &m.JWKS)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *JWTBundle) encode(e *encoder) {
	e.string(1, m.TrustDomain)
	e.bytes(2, m.JWKS)
}

// Credentials is the credential fields shared by
// svidagent.plugin.writer.v1.WriteRequest and
// svidagent.plugin.issuer.v1.IssueResponse, whose field numbers differ.
type Credentials struct {
	X509SVIDs   []X509SVID
	X509Bundles []X509Bundle
	JWTSVIDs    []JWTSVID
	JWTBundles  []JWTBundle
}

// decode decodes field num into c when it is one of the four credential
// fields, numbered from first; it reports whether it was.
func (c *Credentials) decode(d *decoder, first, num protowire.Number, typ protowire.Type) bool {
	switch num {
	case first:
		d.message(num, typ, func(b []byte) error {
			c.X509SVIDs = append(c.X509SVIDs, X509SVID{})
			return c.X509SVIDs[len(c.X509SVIDs)-1].unmarshal(b)
		})
	case first + 1:
		d.message(num, typ, func(b []byte) error {
			c.X509Bundles = append(c.X509Bundles, X509Bundle{})
			return c.X509Bundles[len(c.X509Bundles)-1].unmarshal(b)
		})
	case first + 2:
		d.message(num, typ, func(b []byte) error {
			c.JWTSVIDs = append(c.JWTSVIDs, JWTSVID{})
			return c.JWTSVIDs[len(c.JWTSVIDs)-1].unmarshal(b)
		})
	case first + 3:
		d.message(num, typ, func(b []byte) error {
			c.JWTBundles = append(c.JWTBundles, JWTBundle{})
			return c.JWTBundles[len(c.JWTBundles)-1].unmarshal(b)
		})
	default:
		return false
	}
	return true
}

func (c *Credentials) encode(e *encoder, first protowire.Number) {
	for i := range c.X509SVIDs {
		e.message(first, c.X509SVIDs[i].encode)
	}
	for i := range c.X509Bundles {
		e.message(first+1, c.X509Bundles[i].encode)
	}
	for i := range c.JWTSVIDs {
		e.message(first+2, c.JWTSVIDs[i].encode)
	}
	for i := range c.JWTBundles {
		e.message(first+3, c.JWTBundles[i].encode)
	}
}

// WriteRequest is svidagent.plugin.writer.v1.WriteRequest.
type WriteRequest struct {
	Name        string // 1
	TrustDomain string // 2
	Credentials        // 3 to 6
	Changed     uint32 // 7
}

func (m *WriteRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch {
		case num == 1:
			d.string(num, typ, &m.Name)
		case num == 2:
			d.string(num, typ, &m.TrustDomain)
		case num == 7:
			d.uint32(num, typ, &m.Changed)
		case m.Credentials.decode(&d, 3, num, typ):
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *WriteRequest) Marshal() ([]byte, error) {
	var e encoder
	e.string(1, m.Name)
	e.string(2, m.TrustDomain)
	m.Credentials.encode(&e, 3)
	e.uint32(7, m.Changed)
	return e.b, e.err
}

// WriteResponse is svidagent.plugin.writer.v1.WriteResponse.
type WriteResponse struct {
	Paths []string // 1
}

func (m *WriteResponse) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.strings(num, typ, &m.Paths)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *WriteResponse) Marshal() ([]byte, error) {
	var e encoder
	e.strings(1, m.Paths)
	return e.b, e.err
}

// JWTRequest is svidagent.plugin.issuer.v1.JWTRequest.
type JWTRequest struct {
	Audience       string   // 1
	ExtraAudiences []string // 2
	FileName       string   // 3
}

func (m *JWTRequest) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Audience)
		case 2:
			d.strings(num, typ, &m.ExtraAudiences)
		case 3:
			d.string(num, typ, &m.FileName)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *JWTRequest) encode(e *encoder) {
	e.string(1, m.Audience)
	e.strings(2, m.ExtraAudiences)
	e.string(3, m.FileName)
}

// IssueRequest is svidagent.plugin.issuer.v1.IssueRequest.
type IssueRequest struct {
	SpiffeID   string       // 1
	Hint       string       // 2
	All        bool         // 3
	X509       bool         // 4
	CSR        []byte       // 5
	TTLSeconds int64        // 6
	JWT        []JWTRequest // 7
	JWTBundles bool         // 8
}

func (m *IssueRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.SpiffeID)
		case 2:
			d.string(num, typ, &m.Hint)
		case 3:
			d.bool(num, typ, &m.All)
		case 4:
			d.bool(num, typ, &m.X509)
		case 5:
			d.bytes(num, typ, &m.CSR)
		case 6:
			d.int64(num, typ, &m.TTLSeconds)
		case 7:
			d.message(num, typ, func(b []byte) error {
				m.JWT = append(m.JWT, JWTRequest{})
				return m.JWT[len(m.JWT)-1].unmarshal(b)
			})
		case 8:
			d.bool(num, typ, &m.JWTBundles)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *IssueRequest) Marshal() ([]byte, error) {
	var e encoder
	e.string(1, m.SpiffeID)
	e.string(2, m.Hint)
	e.bool(3, m.All)
	e.bool(4, m.X509)
	e.bytes(5, m.CSR)
	e.int64(6, m.TTLSeconds)
	for i := range m.JWT {
		e.message(7, m.JWT[i].encode)
	}
	e.bool(8, m.JWTBundles)
	return e.b, e.err
}

// IssueResponse is svidagent.plugin.issuer.v1.IssueResponse.
type IssueResponse struct {
	Credentials // 1 to 4
}

func (m *IssueResponse) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		if !m.Credentials.decode(&d, 1, num, typ) {
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *IssueResponse) Marshal() ([]byte, error) {
	var e encoder
	m.Credentials.encode(&e, 1)
	return e.b, e.err
}

// X509Identity is svidagent.plugin.notifier.v1.X509Identity.
type X509Identity struct {
	SpiffeID  string // 1
	Serial    string // 2
	NotBefore int64  // 3
	NotAfter  int64  // 4
	Hint      string // 5
}

func (m *X509Identity) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.SpiffeID)
		case 2:
			d.string(num, typ, &m.Serial)
		case 3:
			d.int64(num, typ, &m.NotBefore)
		case 4:
			d.int64(num, typ, &m.NotAfter)
		case 5:
			d.string(num, typ, &m.Hint)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *X509Identity) encode(e *encoder) {
	e.string(1, m.SpiffeID)
	e.string(2, m.Serial)
	e.int64(3, m.NotBefore)
	e.int64(4, m.NotAfter)
	e.string(5, m.Hint)
}

// JWTIdentity is svidagent.plugin.notifier.v1.JWTIdentity.
type JWTIdentity struct {
	SpiffeID  string   // 1
	Audiences []string // 2
	Expiry    int64    // 3
	FileName  string   // 4
}

func (m *JWTIdentity) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.SpiffeID)
		case 2:
			d.strings(num, typ, &m.Audiences)
		case 3:
			d.int64(num, typ, &m.Expiry)
		case 4:
			d.string(num, typ, &m.FileName)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *JWTIdentity) encode(e *encoder) {
	e.string(1, m.SpiffeID)
	e.strings(2, m.Audiences)
	e.int64(3, m.Expiry)
	e.string(4, m.FileName)
}

// NotifyRequest is svidagent.plugin.notifier.v1.NotifyRequest.
type NotifyRequest struct {
	Name         string         // 1
	Reason       uint32         // 2
	Initial      bool           // 3
	TimeUnixNano int64          // 4
	X509         []X509Identity // 5
	JWT          []JWTIdentity  // 6
	Paths        []string       // 7
}

func (m *NotifyRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Name)
		case 2:
			d.uint32(num, typ, &m.Reason)
		case 3:
			d.bool(num, typ, &m.Initial)
		case 4:
			d.int64(num, typ, &m.TimeUnixNano)
		case 5:
			d.message(num, typ, func(b []byte) error {
				m.X509 = append(m.X509, X509Identity{})
				return m.X509[len(m.X509)-1].unmarshal(b)
			})
		case 6:
			d.message(num, typ, func(b []byte) error {
				m.JWT = append(m.JWT, JWTIdentity{})
				return m.JWT[len(m.JWT)-1].unmarshal(b)
			})
		case 7:
			d.strings(num, typ, &m.Paths)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *NotifyRequest) Marshal() ([]byte, error) {
	var e encoder
	e.string(1, m.Name)
	e.uint32(2, m.Reason)
	e.bool(3, m.Initial)
	e.int64(4, m.TimeUnixNano)
	for i := range m.X509 {
		e.message(5, m.X509[i].encode)
	}
	for i := range m.JWT {
		e.message(6, m.JWT[i].encode)
	}
	e.strings(7, m.Paths)
	return e.b, e.err
}

// LogRequest is svidagent.host.v1.LogRequest.
type LogRequest struct {
	Level   int32    // 1
	Message string   // 2
	Attrs   []string // 3
}

func (m *LogRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.int32(num, typ, &m.Level)
		case 2:
			d.string(num, typ, &m.Message)
		case 3:
			d.strings(num, typ, &m.Attrs)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *LogRequest) Marshal() ([]byte, error) {
	var e encoder
	e.int32(1, m.Level)
	e.string(2, m.Message)
	e.strings(3, m.Attrs)
	return e.b, e.err
}

// Header is svidagent.host.v1.Header.
type Header struct {
	Name  string // 1
	Value string // 2
}

func (m *Header) unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Name)
		case 2:
			d.string(num, typ, &m.Value)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *Header) encode(e *encoder) {
	e.string(1, m.Name)
	e.string(2, m.Value)
}

// HTTPRequest is svidagent.host.v1.HTTPRequest.
type HTTPRequest struct {
	Method    string   // 1
	URL       string   // 2
	Headers   []Header // 3
	Body      []byte   // 4
	TimeoutMS int64    // 5
}

func (m *HTTPRequest) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Method)
		case 2:
			d.string(num, typ, &m.URL)
		case 3:
			d.message(num, typ, func(b []byte) error {
				m.Headers = append(m.Headers, Header{})
				return m.Headers[len(m.Headers)-1].unmarshal(b)
			})
		case 4:
			d.bytes(num, typ, &m.Body)
		case 5:
			d.int64(num, typ, &m.TimeoutMS)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *HTTPRequest) Marshal() ([]byte, error) {
	var e encoder
	e.string(1, m.Method)
	e.string(2, m.URL)
	for i := range m.Headers {
		e.message(3, m.Headers[i].encode)
	}
	e.bytes(4, m.Body)
	e.int64(5, m.TimeoutMS)
	return e.b, e.err
}

// HTTPResponse is svidagent.host.v1.HTTPResponse.
type HTTPResponse struct {
	Status  int32    // 1
	Headers []Header // 2
	Body    []byte   // 3
}

func (m *HTTPResponse) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.int32(num, typ, &m.Status)
		case 2:
			d.message(num, typ, func(b []byte) error {
				m.Headers = append(m.Headers, Header{})
				return m.Headers[len(m.Headers)-1].unmarshal(b)
			})
		case 3:
			d.bytes(num, typ, &m.Body)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *HTTPResponse) Marshal() ([]byte, error) {
	var e encoder
	e.int32(1, m.Status)
	for i := range m.Headers {
		e.message(2, m.Headers[i].encode)
	}
	e.bytes(3, m.Body)
	return e.b, e.err
}

// AddCounter is svidagent.host.v1.AddCounter.
type AddCounter struct {
	Name   string            // 1
	Help   string            // 2
	Labels map[string]string // 3
	Delta  float64           // 4
}

func (m *AddCounter) Unmarshal(b []byte) error {
	d := decoder{b: b}
	for num, typ, ok := d.next(); ok; num, typ, ok = d.next() {
		switch num {
		case 1:
			d.string(num, typ, &m.Name)
		case 2:
			d.string(num, typ, &m.Help)
		case 3:
			d.message(num, typ, func(b []byte) error {
				var k, v string
				e := decoder{b: b}
				for num, typ, ok := e.next(); ok; num, typ, ok = e.next() {
					switch num {
					case 1:
						e.string(num, typ, &k)
					case 2:
						e.string(num, typ, &v)
					default:
						e.skip(num, typ)
					}
				}
				if e.err == nil {
					if m.Labels == nil {
						m.Labels = map[string]string{}
					}
					m.Labels[k] = v
				}
				return e.err
			})
		case 4:
			d.double(num, typ, &m.Delta)
		default:
			d.skip(num, typ)
		}
	}
	return d.err
}

func (m *AddCounter) Marshal() ([]byte, error) {
	var e encoder
	e.string(1, m.Name)
	e.string(2, m.Help)
	e.stringMap(3, m.Labels)
	e.double(4, m.Delta)
	return e.b, e.err
}
