package conformance

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"testing"
	"time"
)

// Status is a check's outcome.
type Status string

const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	// StatusSkip is a check that does not apply to the plugin: a
	// capability it does not claim, a hook the target does not provide.
	StatusSkip Status = "skip"
)

// Result is one check's outcome.
type Result struct {
	// Name is the check's name, e.g. "configure_idempotent".
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Reason is one line: why it failed or was skipped; empty on a pass.
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is the outcome of every check over one target.
type Report struct {
	// Target names the plugin: its file name, or its Describe name.
	Target  string   `json:"target"`
	Kind    string   `json:"kind"`
	Results []Result `json:"results"`
	// ExampleConfig is the plugin's example config from Describe when the
	// checks ran with it (the target set no ConfigJSON); empty otherwise.
	ExampleConfig string `json:"example_config,omitempty"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status == StatusFail {
			return true
		}
	}
	return false
}

// Result returns the result of the check named name.
func (r *Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// outcome is what a check function returns.
type outcome struct {
	status Status
	reason string
}

func pass() outcome { return outcome{status: StatusPass} }

func fail(format string, args ...any) outcome {
	return outcome{status: StatusFail, reason: fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) outcome {
	return outcome{status: StatusSkip, reason: "not applicable: " + fmt.Sprintf(format, args...)}
}

// reporter runs one named check; testing.T (through Run) and the CLI's
// collector (through Check) are its two implementations.
type reporter interface {
	check(name string, f func() outcome) Status
}

// tReporter reports checks as subtests.
type tReporter struct{ t *testing.T }

func (r tReporter) check(name string, f func() outcome) Status {
	st := StatusFail
	r.t.Run(name, func(t *testing.T) {
		o := f()
		st = o.status
		switch o.status {
		case StatusFail:
			t.Errorf("%s: %s", name, o.reason)
		case StatusSkip:
			t.Skip(o.reason)
		}
	})
	return st
}

// collector records checks into a Report.
type collector struct{ r *Report }

func (c collector) check(name string, f func() outcome) Status {
	start := time.Now()
	o := f()
	c.r.Results = append(c.r.Results, Result{Name: name, Status: o.status, Reason: o.reason, Duration: time.Since(start)})
	return o.status
}

// Run runs every check that applies to target as subtests of t, named
// after the checks. A failed check fails t with its one-line reason.
func Run(t *testing.T, target Target) {
	t.Helper()
	s, err := newSuite(target)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx := t.Context()
	s.run(ctx, tReporter{t})
	if s.exampleUsed {
		t.Logf("ran with the example config from Describe: %s", s.t.ConfigJSON)
	}
}

// Check runs every check that applies to target and returns the report.
// It fails only when the target itself is unusable (no kind, no plugin);
// a failing plugin is a report with failed results.
func Check(ctx context.Context, target Target) (*Report, error) {
	s, err := newSuite(target)
	if err != nil {
		return nil, err
	}
	defer s.close()
	r := &Report{Target: s.name(), Kind: string(target.Kind)}
	s.run(ctx, collector{r})
	if s.exampleUsed {
		r.ExampleConfig = string(s.t.ConfigJSON)
	}
	return r, nil
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes the report as JUnit XML: one testsuite named after the
// target, one testcase per check.
func (r *Report) WriteJUnit(w io.Writer) error {
	s := junitSuite{Name: "conformance/" + r.Kind + "/" + r.Target, Tests: len(r.Results)}
	var total time.Duration
	for _, res := range r.Results {
		total += res.Duration
		c := junitCase{Name: res.Name, Classname: s.Name, Time: fmt.Sprintf("%.3f", res.Duration.Seconds())}
		switch res.Status {
		case StatusFail:
			s.Failures++
			c.Failure = &junitMessage{Message: res.Reason}
		case StatusSkip:
			s.Skipped++
			c.Skipped = &junitMessage{Message: res.Reason}
		}
		s.Cases = append(s.Cases, c)
	}
	s.Time = fmt.Sprintf("%.3f", total.Seconds())
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
