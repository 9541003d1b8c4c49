package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
)

const conformanceUsage = `Usage:
  svidagent conformance -kind notifier|writer|issuer -plugin PATH [-config FILE] [-invalid-config FILE]
                        [-failing-config FILE] [-output-dir DIR] [-allow-host HOST]... [-cache-dir DIR]
                        [-junit out.xml] [-json]

Runs the conformance suite over a .wasm module or a go-plugin executable:
each check prints pass, fail or skip with its one-line reason. -config is
the plugin's config block as JSON; without it the suite runs with the
example config the plugin gives in Describe, else {}. -output-dir is
created (0700) if missing; without it a writer gets a temporary directory
(a WASM writer sees it as /out). Exit code: 0 all passed, 1 a check
failed, 2 usage error.
`

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// conformanceCmd runs `svidagent conformance`.
func conformanceCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("svidagent conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, conformanceUsage) }
	var (
		kind, path, config, invalid, failing, outDir, cacheDir, junit string
		asJSON                                                        bool
		allow                                                         stringList
	)
	fs.StringVar(&kind, "kind", "", "notifier, writer or issuer")
	fs.StringVar(&path, "plugin", "", "the .wasm module or go-plugin executable")
	fs.StringVar(&config, "config", "", "a valid config block, as a JSON file (default: the plugin's example config)")
	fs.StringVar(&invalid, "invalid-config", "", "a config the plugin must reject, as a JSON file")
	fs.StringVar(&failing, "failing-config", "", "notifiers: a valid config under which Notify must fail, as a JSON file")
	fs.StringVar(&outDir, "output-dir", "", "writers: the directory the config writes to, created 0700 if missing (default: a temporary directory)")
	fs.StringVar(&cacheDir, "cache-dir", "", "WASM compilation cache directory")
	fs.StringVar(&junit, "junit", "", "also write a JUnit XML report to this file")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of lines")
	fs.Var(&allow, "allow-host", "grant the HTTP host service for this host (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || path == "" || kind == "" {
		fmt.Fprint(stderr, conformanceUsage)
		return exitUsage
	}
	t := conformance.Target{Kind: hostapi.Kind(kind), Path: path, OutputDir: outDir, CacheDir: cacheDir, AllowHosts: allow}
	for _, f := range []struct {
		file string
		dst  *[]byte
	}{{config, &t.ConfigJSON}, {invalid, &t.InvalidConfigJSON}, {failing, &t.FailingConfigJSON}} {
		if f.file == "" {
			continue
		}
		b, err := os.ReadFile(f.file)
		if err != nil {
			fmt.Fprintf(stderr, "svidagent conformance: reading the config: %v\n", err)
			return exitUsage
		}
		*f.dst = b
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := conformance.Check(ctx, t)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent conformance: %v\n", err)
		return exitUsage
	}
	if asJSON {
		if err := rep.WriteJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "svidagent conformance: writing the report: %v\n", err)
			return exitRuntime
		}
	} else {
		for _, r := range rep.Results {
			if r.Reason != "" {
				fmt.Fprintf(stdout, "%-4s %-30s %s\n", r.Status, r.Name, r.Reason)
			} else {
				fmt.Fprintf(stdout, "%-4s %s\n", r.Status, r.Name)
			}
		}
	}
	if junit != "" {
		f, err := os.Create(junit)
		if err == nil {
			err = rep.WriteJUnit(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "svidagent conformance: writing the JUnit report: %v\n", err)
			return exitRuntime
		}
	}
	if rep.ExampleConfig != "" && !asJSON {
		fmt.Fprintf(stdout, "     (ran with the plugin's example config %s)\n", rep.ExampleConfig)
	}
	if rep.Failed() {
		if !asJSON {
			fmt.Fprintf(stdout, "FAIL %s: the plugin does not conform\n", rep.Target)
		}
		return exitRuntime
	}
	if !asJSON {
		fmt.Fprintf(stdout, "ok   %s conforms\n", rep.Target)
	}
	return exitOK
}
