package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
)

// lowRemaining is the fraction of a credential's lifetime below which
// `svidagent status` highlights its time left.
const lowRemaining = 0.2

// statusCmd fetches the agent's /status and prints it as tables, or as
// the JSON it got with -json. It exits 1 when the agent is unreachable.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "the agent's health listener `address` (health { address })")
	asJSON := fs.Bool("json", false, "print the agent's JSON as it is")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "svidagent status: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	url := *addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + "/status"
	body, err := fetchStatus(url, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent status: %v\n", err)
		return exitRuntime
	}
	if !json.Valid(body) {
		fmt.Fprintf(stderr, "svidagent status: the answer of %s is not JSON; is that address the agent's health listener?\n", url)
		return exitRuntime
	}
	if *asJSON {
		_, _ = stdout.Write(jsonSafe(body))
		return exitOK
	}
	var st agent.Status
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(stderr, "svidagent status: decoding the answer of %s: %v; is that address the agent's health listener?\n", url, err)
		return exitRuntime
	}
	cleanStatus(&st)
	printStatus(stdout, st, isTerminal(stdout))
	return exitOK
}

func fetchStatus(url string, timeout time.Duration) ([]byte, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("the agent is not reachable at %s: %w; is it running, with health { enabled = true } on that address? (set it with -addr)", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the agent at %s answered %s; is it an svidagent with /status (this version or later)?", url, resp.Status)
	}
	return body, nil
}

// unwrapURLError drops net/http's "Get \"url\": " prefix: the message
// names the URL already.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// isTerminal reports whether w is a terminal, for colour.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printStatus writes st as readable tables. A time left below 20 % of the
// lifetime is shown in bold red when color is set, and marked "!"
// otherwise.
func printStatus(w io.Writer, st agent.Status, color bool) {
	state := "ready"
	switch {
	case !st.Live:
		state = "NOT LIVE"
	case !st.Ready:
		state = "NOT READY"
	}
	fmt.Fprintf(w, "agent:          %s", state)
	if st.Version != "" {
		fmt.Fprintf(w, " (%s)", st.Version)
	}
	fmt.Fprintln(w)
	last := "never"
	if st.LastRotation != nil {
		last = st.LastRotation.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "last rotation:  %s\n", last)
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem:        %s\n", p)
	}
	if len(st.Starting) > 0 {
		fmt.Fprintf(w, "starting:       %s\n", strings.Join(st.Starting, ", "))
	}
	for _, s := range st.SVIDs {
		for _, n := range s.Notifiers {
			if !n.Retrying {
				continue
			}
			next := "-"
			if n.NextAttempt != nil {
				next = n.NextAttempt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "retrying:       %s/%s after %d failed attempts, next %s: %s\n", s.Name, n.Notifier, n.Attempts, next, oneLine(n.LastError))
		}
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SPIFFE ID\tSVID\tTYPE\tSERIAL\tNOT BEFORE\tNOT AFTER\tTIME LEFT")
	flagged := false
	for _, id := range st.Identities {
		nb := "-"
		if id.NotBefore != nil {
			nb = id.NotBefore.UTC().Format(time.RFC3339)
		}
		serial := id.Serial
		if serial == "" {
			serial = "-"
		}
		left := id.TimeLeft
		if id.Remaining < lowRemaining {
			flagged = true
			if color {
				left = "\x1b[1;31m" + left + "\x1b[0m"
			} else {
				left += " !"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id.SPIFFEID, id.SVID, id.Type, serial, nb, id.NotAfter.UTC().Format(time.RFC3339), left)
	}
	_ = tw.Flush()
	if len(st.Identities) == 0 {
		fmt.Fprintln(w, "(nothing delivered yet)")
	}
	if flagged && !color {
		fmt.Fprintf(w, "! less than %d%% of the lifetime left\n", int(lowRemaining*100))
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tKIND\tSVID\tTYPE\tRUNTIME\tSHA256\tSTATE\tRESTARTS\tLAST ERROR")
	var changed []string
	for _, p := range st.Plugins {
		sum := p.SHA256
		if len(sum) > 12 {
			sum = sum[:12]
		}
		state := p.State
		switch {
		case p.FileSHA256 != "":
			state += ", file changed"
			changed = append(changed, fmt.Sprintf("! plugin %s: the file on disk has sha256 %s, not the %s it was loaded with; it is loaded only once the config pins it (svidagent plugin hash), check where it came from", p.Name, p.FileSHA256, p.SHA256))
		case p.FileError != "":
			state += ", file unreadable"
			changed = append(changed, fmt.Sprintf("! plugin %s: its file on disk cannot be hashed: %s", p.Name, p.FileError))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			p.Name, p.Kind, dash(p.SVID), dash(p.Type), p.Runtime, dash(sum), state, p.Restarts, dash(oneLine(p.LastError)))
	}
	_ = tw.Flush()
	for _, c := range changed {
		fmt.Fprintln(w, c)
	}
}

// cleanStatus escapes every string of st that a plugin (or whatever
// answered at the address) controls, so that none writes a control
// sequence to the terminal: adapter.BoundText escapes non-printable
// bytes Go-style ("\x1b") and caps each at adapter.MaxTextBytes.
func cleanStatus(st *agent.Status) {
	c := adapter.BoundText
	st.Version = c(st.Version)
	for i := range st.Problems {
		st.Problems[i] = c(st.Problems[i])
	}
	for i := range st.Starting {
		st.Starting[i] = c(st.Starting[i])
	}
	for i := range st.Identities {
		id := &st.Identities[i]
		id.SPIFFEID, id.SVID, id.Type, id.Serial, id.TimeLeft = c(id.SPIFFEID), c(id.SVID), c(id.Type), c(id.Serial), c(id.TimeLeft)
	}
	for i := range st.Plugins {
		p := &st.Plugins[i]
		p.Name, p.Kind, p.SVID, p.Type, p.Runtime = c(p.Name), c(p.Kind), c(p.SVID), c(p.Type), c(p.Runtime)
		p.SHA256, p.State, p.LastError = c(p.SHA256), c(p.State), c(strings.Join(strings.Fields(p.LastError), " "))
		p.FileSHA256, p.FileError = c(p.FileSHA256), c(p.FileError)
	}
}

// jsonSafe returns body, valid JSON, with every rune that is not printable
// and not JSON whitespace (DEL, C1 controls such as the 8-bit CSI, Unicode
// format characters, invalid UTF-8) written as a \uXXXX escape. Valid JSON
// has such runes only inside strings, and bytes below 0x20 there only
// escaped already, so the result is the same JSON, inert on a terminal.
func jsonSafe(body []byte) []byte {
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); {
		r, size := utf8.DecodeRune(body[i:])
		i += size
		if r == ' ' || r == '\n' || r == '\t' || r == '\r' || (unicode.IsPrint(r) && !(r == utf8.RuneError && size == 1)) {
			out = utf8.AppendRune(out, r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
