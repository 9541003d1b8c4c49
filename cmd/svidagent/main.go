// Command svidagent keeps SPIFFE credentials fresh on a machine and hands
// them to the software that needs them. It is a drop-in successor to
// spiffe-helper: `svidagent -config helper.conf` behaves like
// `spiffe-helper -config helper.conf`.
//
// Exit codes: 0 success or clean shutdown on SIGTERM/SIGINT; 1 runtime
// failure (including a one-shot fetch that does not succeed within its
// timeout); 2 usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/svidagent/svidagent/agent"
	"github.com/svidagent/svidagent/internal/config"
	"github.com/svidagent/svidagent/internal/residency"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage:
  svidagent run      [-config FILE] [-daemon-mode=BOOL] [-log-level LEVEL] [-log-format text|json]
  svidagent fetch    [-config FILE] [-log-level LEVEL] [-log-format text|json]
  svidagent fetch    -jwt-audience AUD [-format token|json] [-svid NAME] [-config FILE]
  svidagent exec     [-config FILE] [-log-level LEVEL] [-log-format text|json] -- CMD [ARGS...]
  svidagent validate [-config FILE]
  svidagent plugin hash FILE
  svidagent plugin inspect [-json] [-sha256 HEX | -allow-exec] FILE
  svidagent status   [-addr 127.0.0.1:8081] [-json]
  svidagent conformance -kind notifier|writer|issuer -plugin PATH [-config FILE] [-junit out.xml] [-json]
  svidagent version
  svidagent [-config FILE] [-daemon-mode=BOOL]   (spiffe-helper compatible)

With no -config, agent.hcl and then helper.conf are looked for in the
working directory. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
`

// commandHelp says what the commands that take the common flags do, for
// their -h.
var commandHelp = map[string]string{
	"run":      "Keeps the configured credentials fresh until SIGTERM or SIGINT (or fetches once,\nwith daemon_mode = false); SIGHUP and a change of the file reload the configuration.",
	"helper":   "spiffe-helper compatible: the same as svidagent run.",
	"fetch":    "Fetches and writes the credentials once, then exits. With -jwt-audience it prints\none JWT-SVID on standard output instead and writes nothing.",
	"exec":     "Fetches and writes the credentials, starts CMD once they are in place, keeps them\nfresh while CMD runs, forwards signals to CMD, and exits with CMD's exit code\n(128+N when a signal N ended it).",
	"validate": "Loads the configuration, opens the external plugins (their pins checked) and runs\nevery plugin's Validate; prints every problem as file:line:col.",
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "helper"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run", "helper":
		return runAgent(cmd, args, stdout, stderr, false)
	case "fetch":
		return runAgent(cmd, args, stdout, stderr, true)
	case "exec":
		return execCmd(args, stderr)
	case "validate":
		return validate(args, stdout, stderr)
	case "plugin":
		return pluginCmd(args, stdout, stderr)
	case "conformance":
		return conformanceCmd(args, stdout, stderr)
	case "status":
		return statusCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "svidagent: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "svidagent " + v
}

type commonFlags struct {
	// fetch only: a JWT-SVID on stdout instead of files.
	jwtAudiences stringList
	jwtFormat    string
	jwtSVID      string

	config     string
	daemonMode bool
	daemonSet  bool
	levelSet   bool
	logLevel   string
	logFormat  string
}

func parseFlags(name string, args []string, stderr io.Writer, withDaemon bool) (*commonFlags, error) {
	f := &commonFlags{}
	fs := flag.NewFlagSet("svidagent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		cmd := "svidagent " + name
		if name == "helper" {
			cmd = "svidagent"
		}
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\n%s\n\nFlags:\n", cmd, commandHelp[name])
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nExit codes: 0 ok, 1 runtime failure, 2 usage or config error. Every command: svidagent help\n")
	}
	fs.StringVar(&f.config, "config", "", "configuration file (agent.hcl or spiffe-helper's helper.conf); default: agent.hcl, then helper.conf, in the working directory")
	if withDaemon {
		fs.BoolVar(&f.daemonMode, "daemon-mode", true, "keep running (true) or fetch once and exit (false); overrides daemon_mode in the file when given")
	}
	if name == "fetch" {
		fs.Var(&f.jwtAudiences, "jwt-audience", "print a JWT-SVID for this audience on standard output and write nothing; repeat for further audiences of the same token")
		fs.StringVar(&f.jwtFormat, "format", "token", "with -jwt-audience: token (the JWT and a newline) or json ({\"spiffe_id\", \"token\", \"expires_at\", \"audience\"})")
		fs.StringVar(&f.jwtSVID, "svid", "", "with -jwt-audience: the svid block whose issuer and SPIFFE ID are used; default: the first")
	}
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "daemon-mode":
			f.daemonSet = true
		case "log-level":
			f.levelSet = true
		}
	})
	return f, nil
}

func newLogger(f *commonFlags, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: use debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(newRepeatHandler(slog.NewTextHandler(w, opts), repeatWindow, time.Now)), nil
	case "json":
		return slog.New(newRepeatHandler(slog.NewJSONHandler(w, opts), repeatWindow, time.Now)), nil
	}
	return nil, fmt.Errorf("-log-format %q: use text or json", f.logFormat)
}

// findConfig applies the default: agent.hcl, then helper.conf.
func findConfig(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	for _, p := range []string{"agent.hcl", "helper.conf"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no -config given and neither agent.hcl nor helper.conf is in the working directory")
}

func loadConfig(path string, stderr io.Writer) (*agent.Config, bool) {
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		printConfigError(stderr, path, err)
		return nil, false
	}
	if len(cfg.Warnings) > 0 {
		printConfigError(stderr, path, cfg.Warnings)
	}
	return cfg, true
}

// printConfigError prints diagnostics as file:line:col: summary, the
// source line with a caret, and the detail that says how to fix it.
func printConfigError(w io.Writer, path string, err error) {
	fmt.Fprint(w, config.FormatError(err, config.SourceFiles(err)))
}

// loadCommand parses a command's flags and loads its configuration. A
// code of 0 or more is the exit code to return at once.
func loadCommand(name string, args []string, stderr io.Writer, withDaemon bool) (*commonFlags, string, *agent.Config, int) {
	f, err := parseFlags(name, args, stderr, withDaemon)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", nil, exitOK
		}
		fmt.Fprintf(stderr, "svidagent: %v\n", err)
		return nil, "", nil, exitUsage
	}
	path, err := findConfig(f.config)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent: %v\n", err)
		return nil, "", nil, exitUsage
	}
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return nil, "", nil, exitUsage
	}
	return f, path, cfg, -1
}

func runAgent(name string, args []string, stdout, stderr io.Writer, oneShot bool) int {
	f, path, cfg, code := loadCommand(name, args, stderr, !oneShot)
	if code >= 0 {
		return code
	}
	if !f.levelSet && cfg.LogLevel != "" {
		f.logLevel = cfg.LogLevel // helper.conf's log_level, when -log-level is not given
	}
	log, err := newLogger(f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "svidagent: %v\n", err)
		return exitUsage
	}
	if f.daemonSet {
		cfg.DaemonMode = f.daemonMode
	}
	if len(f.jwtAudiences) > 0 {
		return fetchJWT(f, cfg, log, stdout, stderr)
	}
	if oneShot {
		cfg.DaemonMode = false
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting", "version", versionString(), "config", path, "format", string(cfg.Format), "daemon_mode", cfg.DaemonMode)
	opts := []agent.Option{agent.WithLogger(log), agent.WithVersion(strings.TrimPrefix(versionString(), "svidagent ")), agent.WithConfigPath(path)}
	if cfg.DaemonMode {
		opts = append(opts, agent.WithOnSettled(settle(log, len(cfg.Plugins) > 0)))
	}
	a := agent.New(cfg, opts...)
	if cfg.DaemonMode {
		// SIGHUP reloads the configuration (as the file watcher does).
		// In one-shot mode there is nothing to reload and SIGHUP keeps
		// its default action.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		hctx, hcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		defer func() { signal.Stop(hup); hcancel(); <-done }()
		go func() {
			defer close(done)
			for {
				select {
				case <-hctx.Done():
					return
				case <-hup:
					log.Info("SIGHUP received; reloading the configuration", "component", "reload", "config", path)
					_ = a.Reload(ctx) // Reload logs its outcome
				}
			}
		}()
	}
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", "error", err)
		return exitRuntime
	}
	return exitOK
}

// startUpTail is how long after start-up settles the start-up pages are
// released (see settle).
const startUpTail = 5 * time.Second

// settle is the agent's WithOnSettled hook: once start-up is over (the
// first credentials delivered, every plugin started), it gives back what
// start-up used. With plugins, the garbage of their compiles (hundreds of
// MiB for a few Go WASM modules) goes back to the system at once rather
// than when the runtime's scavenger gets to it; then the binary's start-up
// pages are dropped from the resident set (internal/residency).
func settle(log *slog.Logger, plugins bool) func() {
	return func() {
		if plugins {
			debug.FreeOSMemory()
		}
		// The tail of start-up (the first collections, the Workload API
		// stream's first messages) still touches code that is not used
		// after: drop the pages once it has run.
		time.Sleep(startUpTail)
		released, err := residency.ReleaseExecutable()
		if err != nil {
			log.Warn("releasing start-up pages failed", "error", err)
			return
		}
		log.Debug("start-up pages released", "kib", released>>10)
	}
}

func validate(args []string, stdout, stderr io.Writer) int {
	_, path, cfg, code := loadCommand("validate", args, stderr, false)
	if code >= 0 {
		return code
	}
	// The plugins' own checks: each external plugin is opened (its pin
	// verified) and runs Validate on its config.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if diags := validatePlugins(ctx, cfg, log); diags.HasErrors() {
		printConfigError(stderr, path, diags)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: valid %s configuration, %d issuer(s), %d svid block(s)\n", path, cfg.Format, len(cfg.Issuers), len(cfg.SVIDs))
	return exitOK
}
