//go:build wasip1

// Command notifier is the test guest: a well-behaved notifier that turns
// hostile on request. NotifyRequest.name selects the behaviour:
//
//	""/"ok"        succeed (fails with FAILED_PRECONDITION before Configure)
//	"echo"         fail with UNKNOWN and the configured config_json as message
//	"loud"         fail with UNKNOWN and a 3 MiB message
//	"log"          log through the log import and stdout, then succeed
//	"loop"         spin forever
//	"sleep"        block in time.Sleep (WASI poll_oneoff) for an hour
//	"oom"          allocate without bound
//	"panic"        panic
//	"big"          answer with a 1 MiB reply
//	"garbage"      answer with a malformed envelope
//	"badptr"       answer with a pointer past the end of memory
//	"open:PATH"    read PATH; the message reports what happened
//	"write:PATH"   write PATH; the message reports what happened
//	"symlink:T=L"  make a symbolic link L with target T
//	"link:OLD=NEW" make a hard link NEW to OLD
//	"rename:A=B"   rename A to B
//	"mkdir:PATH"   make the directory PATH
//	"ls:PATH"      list the directory PATH
//	"http:URL"     GET URL through the HTTP host service; the message
//	               reports the status code and body
//
// Its environment can slow or break its start (_initialize):
// NOTIFIER_INIT_SLEEP (a time.Duration) sleeps that long in init, and
// NOTIFIER_INIT_PANIC panics there. As a writer with an output directory,
// its Configure fails with UNAVAILABLE while /out/fail-configure exists.
//
// Built with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o notifier.wasm ./testdata/guests/notifier
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/svidagent/svidagent/internal/testdata/abi"
	"google.golang.org/protobuf/encoding/protowire"
)

func main() {}

func init() {
	if d, err := time.ParseDuration(os.Getenv("NOTIFIER_INIT_SLEEP")); err == nil {
		time.Sleep(d)
	}
	if os.Getenv("NOTIFIER_INIT_PANIC") != "" {
		panic("init boom")
	}
}

//go:wasmexport svidagent_abi_v1
func marker() {}

var (
	configured bool
	config     string
	hog        [][]byte
)

//go:wasmexport svidagent_call
func call(ptr, n uint32) uint64 { return abi.Call(ptr, n, handle) }

// field returns the first length-delimited field num of a message.
func field(b []byte, num protowire.Number) string {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return ""
		}
		b = b[l:]
		if typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return ""
			}
			if n == num {
				return string(v)
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return ""
		}
		b = b[l:]
	}
	return ""
}

func handle(method string, payload []byte) (uint32, string, []byte) {
	switch method {
	case "svidagent.plugin.v1.Plugin/Describe":
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, "test-notifier")
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, "0.1.0")
		for _, s := range []string{"svidagent.plugin.v1.Plugin", "svidagent.plugin.notifier.v1.Notifier"} {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
		return 0, "", b
	case "svidagent.plugin.v1.Plugin/Validate", "svidagent.plugin.v1.Plugin/Close":
		return 0, "", nil
	case "svidagent.plugin.v1.Plugin/Configure":
		if _, err := os.Stat("/out/fail-configure"); err == nil {
			return 14, "configure refused: /out/fail-configure exists", nil
		}
		config, configured = field(payload, 1), true
		abi.Log(0, "configured "+config)
		return 0, "", nil
	case "svidagent.plugin.notifier.v1.Notifier/Notify":
		return notify(field(payload, 1))
	}
	return 12, "unknown method " + method, nil
}

func notify(name string) (uint32, string, []byte) {
	if !configured {
		return 9, "not configured", nil
	}
	switch {
	case name == "" || name == "ok":
	case name == "echo":
		return 2, config, nil
	case name == "loud":
		return 2, strings.Repeat("E", 3<<20), nil
	case name == "log":
		abi.Log(4, "notify log line")
		fmt.Println("stdout line")
	case name == "loop":
		for {
		}
	case name == "sleep":
		time.Sleep(time.Hour)
	case name == "oom":
		// Large steps reach the limit in a few allocations, before the
		// collector (pressed by GOMEMLIMIT) can slow the loop past the
		// call's deadline.
		for {
			hog = append(hog, make([]byte, 4<<20))
		}
	case name == "panic":
		panic("boom")
	case name == "big":
		return 0, "", make([]byte, 1<<20)
	case name == "garbage":
		return abi.CodeGarbage, "", nil
	case name == "badptr":
		return abi.CodeBadPointer, "", nil
	case strings.HasPrefix(name, "open:"):
		b, err := os.ReadFile(name[5:])
		if err != nil {
			return 2, "open failed: " + err.Error(), nil
		}
		return 2, fmt.Sprintf("open succeeded: %d bytes", len(b)), nil
	case strings.HasPrefix(name, "write:"):
		if err := os.WriteFile(name[6:], []byte("x"), 0o600); err != nil {
			return 2, "write failed: " + err.Error(), nil
		}
		return 2, "write succeeded", nil
	case strings.HasPrefix(name, "symlink:"), strings.HasPrefix(name, "link:"), strings.HasPrefix(name, "rename:"):
		op, args, _ := strings.Cut(name, ":")
		a, b, _ := strings.Cut(args, "=")
		f := map[string]func(string, string) error{"symlink": os.Symlink, "link": os.Link, "rename": os.Rename}[op]
		if err := f(a, b); err != nil {
			return 2, op + " failed: " + err.Error(), nil
		}
		return 2, op + " succeeded", nil
	case strings.HasPrefix(name, "mkdir:"):
		if err := os.Mkdir(name[6:], 0o755); err != nil {
			return 2, "mkdir failed: " + err.Error(), nil
		}
		return 2, "mkdir succeeded", nil
	case strings.HasPrefix(name, "ls:"):
		ents, err := os.ReadDir(name[3:])
		if err != nil {
			return 2, "ls failed: " + err.Error(), nil
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return 2, "ls succeeded: " + strings.Join(names, ","), nil
	case strings.HasPrefix(name, "http:"):
		var req []byte
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendString(req, "GET")
		req = protowire.AppendTag(req, 2, protowire.BytesType)
		req = protowire.AppendString(req, name[5:])
		code, msg, resp, ok := abi.HostCall("svidagent.host.v1.HTTP/Request", req)
		if !ok {
			return 13, "host refused the envelope", nil
		}
		if code != 0 {
			return 2, fmt.Sprintf("http failed: code %d: %s", code, msg), nil
		}
		return 2, "http ok: " + field(resp, 3), nil
	default:
		return 3, "unknown behaviour " + name, nil
	}
	return 0, "", nil
}
