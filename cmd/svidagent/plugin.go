package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/plugin/adapter"
	"github.com/svidagent/svidagent/internal/plugin/load"
)

// pluginCmd runs `svidagent plugin hash|inspect`.
func pluginCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "svidagent plugin: missing subcommand (hash or inspect)\n\n%s", usage)
		return exitUsage
	}
	switch args[0] {
	case "hash":
		return pluginHash(args[1:], stdout, stderr)
	case "inspect":
		return pluginInspect(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "svidagent plugin: unknown subcommand %q (want hash or inspect)\n\n%s", args[0], usage)
	return exitUsage
}

// hashFile returns the lowercase hex sha256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func pluginHash(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "svidagent plugin hash: want exactly one FILE\n\n%s", usage)
		return exitUsage
	}
	sum, err := hashFile(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "svidagent: hashing plugin: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintln(stdout, sum)
	return exitOK
}

// inspection is what `plugin inspect` prints.
type inspection struct {
	Path         string   `json:"path"`
	Runtime      string   `json:"runtime"`
	ABIVersions  []string `json:"abi_versions"`
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Kinds        []string `json:"kinds"`
	Services     []string `json:"services"`
	Capabilities []string `json:"capabilities"`
	SHA256       string   `json:"sha256"`
	Error        string   `json:"error,omitempty"`
}

// wasmMagic starts every WebAssembly binary module.
var wasmMagic = []byte("\x00asm")

// detectRuntime tells a WebAssembly module from an executable.
func detectRuntime(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err == nil && bytes.Equal(head, wasmMagic) {
		return config.RuntimeWASM, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o111 == 0 || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is neither a WebAssembly module (no \\0asm magic) nor an executable file", path)
	}
	return config.RuntimeCommand, nil
}

// kindsOf derives the plugin kinds from the services implemented.
func kindsOf(services []string) []string {
	var kinds []string
	for _, k := range []hostapi.Kind{hostapi.KindIssuer, hostapi.KindWriter, hostapi.KindNotifier} {
		for _, s := range services {
			if strings.HasPrefix(s, "svidagent.plugin."+string(k)+".") {
				kinds = append(kinds, string(k))
				break
			}
		}
	}
	return kinds
}

func pluginInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("svidagent plugin inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	pin := fs.String("sha256", "", "run a command plugin only if its sha256 (as `svidagent plugin hash` prints it) is this")
	allowExec := fs.Bool("allow-exec", false, "run a command plugin without a -sha256 pin: only for a file you trust")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "svidagent plugin inspect: want exactly one FILE\n\n%s", usage)
		return exitUsage
	}
	*pin = strings.ToLower(*pin)
	if *pin != "" && !config.IsSHA256Hex(*pin) {
		fmt.Fprintf(stderr, "svidagent plugin inspect: -sha256 %q is not a sha256 in hex (64 characters 0-9, a-f); print the file's with `svidagent plugin hash FILE`\n", *pin)
		return exitUsage
	}
	path := fs.Arg(0)
	runtime, err := detectRuntime(path)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent: inspecting plugin: %v\n", err)
		return exitRuntime
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := inspection{Path: path, Runtime: runtime}
	var ierr error
	if runtime == config.RuntimeWASM {
		// Compiled, and checked for the svidagent_abi_* marker before any
		// of its code runs, in the sandbox.
		var info load.Info
		info, ierr = load.Inspect(ctx, runtime, path, "")
		in.ABIVersions, in.SHA256 = info.ABIVersions, info.SHA256
		in.Name, in.Version, in.Services, in.Capabilities = info.Name, info.Version, info.Services, info.Capabilities
	} else {
		ierr = inspectCommandGated(ctx, path, *pin, *allowExec, &in)
	}
	if in.SHA256 == "" {
		in.SHA256, _ = hashFile(path)
	}
	in.Kinds = kindsOf(in.Services)
	if ierr != nil {
		in.Error = ierr.Error()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(in)
	} else {
		list := func(s []string) string {
			if len(s) == 0 {
				return "(none)"
			}
			return strings.Join(s, ", ")
		}
		fmt.Fprintf(stdout, "path:         %s\n", in.Path)
		fmt.Fprintf(stdout, "runtime:      %s\n", in.Runtime)
		fmt.Fprintf(stdout, "abi:          %s\n", list(in.ABIVersions))
		fmt.Fprintf(stdout, "name:         %s\n", in.Name)
		fmt.Fprintf(stdout, "version:      %s\n", in.Version)
		fmt.Fprintf(stdout, "kinds:        %s\n", list(in.Kinds))
		fmt.Fprintf(stdout, "services:     %s\n", list(in.Services))
		fmt.Fprintf(stdout, "capabilities: %s\n", list(in.Capabilities))
		fmt.Fprintf(stdout, "sha256:       %s\n", in.SHA256)
	}
	if ierr != nil {
		fmt.Fprintf(stderr, "svidagent: %v\n", ierr)
		return exitRuntime
	}
	return exitOK
}

// inspectCommandGated runs the command plugin at path to inspect it only
// when pin is its sha256 or allowExec is set: inspecting a subprocess
// plugin executes it, and a file that merely has the executable bit set
// is no proof that it is one. The pinned run executes the copy whose bytes
// were hashed (subproc's pinning), so the file cannot be swapped
// between the check and the run.
func inspectCommandGated(ctx context.Context, path, pin string, allowExec bool, in *inspection) error {
	if err := load.CommandRuntimeErr(); err != nil {
		return err
	}
	if pin == "" && !allowExec {
		return fmt.Errorf("refusing to run %s: inspecting a command plugin executes it; pin it with -sha256 (print the hash with `svidagent plugin hash %s` and check it against the publisher's), or pass -allow-exec for a file you trust", path, path)
	}
	if pin != "" {
		sum, err := hashFile(path)
		if err != nil {
			return fmt.Errorf("hashing plugin: %w", err)
		}
		if sum != pin {
			return fmt.Errorf("refusing to run %s: its sha256 %s does not match -sha256 %s", path, sum, pin)
		}
	}
	info, err := load.Inspect(ctx, config.RuntimeCommand, path, pin)
	in.ABIVersions, in.SHA256 = info.ABIVersions, info.SHA256
	in.Name, in.Version, in.Services, in.Capabilities = info.Name, info.Version, info.Services, info.Capabilities
	return err
}

// validatePlugins opens every referenced plugin block of cfg, checks its
// pin, and runs the plugin's own Validate on its config. Problems are
// returned as diagnostics against the config {} block's attributes.
func validatePlugins(ctx context.Context, cfg *config.Config, log *slog.Logger) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, e := range cfg.Plugins {
		if e.Kind == "" {
			continue // unused: the loader warned
		}
		fail := func(err error) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin cannot be loaded",
				Detail: err.Error(), Subject: e.DeclRange.Ptr()})
		}
		conn, err := openForValidate(ctx, e, log)
		if err != nil {
			fail(err)
			continue
		}
		p, err := adapter.Negotiate(ctx, conn, adapter.Settings{Kind: e.Kind, Name: e.Name, Logger: log, HostVersion: versionString()})
		if err != nil {
			fail(err)
			continue
		}
		err = p.Validate(ctx, e.ConfigJSON)
		_ = p.Close()
		if fes := hostapi.AsFieldErrors(err); fes != nil {
			diags = append(diags, e.FieldDiagnostics(fes)...)
		} else if err != nil {
			fail(err)
		}
	}
	sort.SliceStable(diags, func(i, j int) bool { return diags[i].Subject.Start.Byte < diags[j].Subject.Start.Byte })
	return diags
}

// openForValidate opens e as the agent would, but touches nothing: a
// command plugin is pinned in a temporary directory removed when it is
// closed, and neither the output directory (created when missing) nor
// HTTP is granted, which Validate does not need.
func openForValidate(ctx context.Context, e *config.External, log *slog.Logger) (adapter.Conn, error) {
	v := *e
	v.WriteDir, v.AllowHosts = "", nil
	return load.Open(ctx, &v, load.Env{Logger: log})
}
