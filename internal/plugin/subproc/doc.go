// Package subproc runs svidagent plugins as hashicorp/go-plugin
// subprocesses (built with sdk/goplugin) and implements adapter.Conn for
// them.
//
//	p, err := subproc.Open(ctx, subproc.Config{
//		Path:     "/usr/libexec/svidagent/notifier-hello",
//		SHA256:   "3f1c…",                     // mandatory
//		Kind:     hostapi.KindNotifier,
//		Name:     "hello",
//		Logger:   log,
//		Services: &services.Services{Logger: services.NewLogger(log, "hello", 0)},
//		StateDir: "/var/lib/svidagent",
//	})
//	if err != nil { ... }
//	plugin, err := adapter.Open(ctx, p, settings) // Describe, Validate, Configure
//
// # Transport
//
// gRPC only, with go-plugin's automatic mutual TLS, the handshake of
// sdk/goplugin (magic cookie SVIDAGENT_PLUGIN=v1), SkipHostEnv (the plugin
// gets none of the agent's environment, and /dev/null as stdin) and a start
// timeout (Config.StartTimeout).
//
// # Pinning
//
// Open reads the executable once, hashes those bytes, compares them with
// Config.SHA256 and writes them to <StateDir>/plugins/<sha256> (mode 0700
// in a 0700 directory, through an O_EXCL temporary file and a rename; an
// existing copy is reused when it hashes right). The copy is what runs, so
// the bytes hashed are the bytes executed: go-plugin's SecureConfig hashes
// the path and executes the path later, and whoever can write the file can
// swap it in between. Executing the hashed file descriptor through
// /proc/self/fd would not close that race: the descriptor names the same
// inode, which its owner can still rewrite after the hash. Every restart
// re-verifies the copy, and re-pins from Config.Path against the same
// sha256 if the copy is gone or altered.
//
// The unix sockets (the plugin's, and the host's for the broker) go in a
// plugin-dir* directory under <StateDir>/run (0700), not $TMPDIR, so that
// the agent runs with a read-only root and only its state directory
// writable; $TMPDIR is used only when that path is too long for a socket
// address.
//
// # Lifecycle
//
// The plugin runs in its own process group. On Linux it also gets
// SIGKILL from the kernel when the agent dies (Pdeathsig): the fork happens
// on an OS thread that stays locked until the process has exited, because
// Pdeathsig fires when the forking thread, not the process, exits. And on
// Linux the plugin is pid 1 of its own pid namespace (CLONE_NEWPID, with
// CLONE_NEWUSER mapping the agent's uid and gid onto themselves when the
// agent is not root): when it dies, however it dies, the kernel kills
// every process left in the namespace, so a grandchild that called setsid
// and ignores SIGTERM does not outlive a SIGKILLed agent. Where the kernel
// refuses the namespaces (user namespaces disabled or restricted), the
// plugin starts without one, under internal/proc's reaper (the agent's own
// executable as a child subreaper watching a pipe only the agent holds),
// which stops every descendant of the plugin when the plugin ends and when
// the agent dies (SIGTERM, SIGKILL 5 s later); the agent logs a warning
// once per plugin. SVIDAGENT_PLUGIN_PIDNS=off forces that path.
// The plugin sees itself as pid 1 (os.Getpid), while /proc is the agent's;
// as pid 1 it also inherits the orphans of its own children, which stay
// zombies until it waits for them or exits.
// Close SIGKILLs the process group and waits for the process and every goroutine
// of the plugin (it does not call the plugin's Close method: the adapter
// does that first).
//
// A call that finds the process dead (it exited, or its gRPC server fails
// go-plugin's health check after the call failed with UNAVAILABLE) fails
// with UNAVAILABLE, and the next call restarts the plugin and replays the
// last successful Describe (with the new broker id) and Configure before it
// is served. The first restart after a crash is immediate; further
// consecutive failures wait RestartBackoff, doubling up to
// MaxRestartBackoff, and calls meanwhile fail fast. After BreakerThreshold
// consecutive failures (crashes and failed starts) the circuit breaker
// opens: calls fail fast for BreakerCooldown, with an error that says so,
// then one start is tried. A call the plugin answers, with or without an
// error, resets the count. A call that outlives its deadline fails with
// DEADLINE_EXCEEDED; the process is not restarted for it.
//
// # Memory
//
// With Config.MemoryBytes, the plugin's RLIMIT_AS is set right after the
// handshake to its address space at that moment plus MemoryBytes (prlimit
// on the running process: the Go runtime reserves far more address space
// at start than it uses, 1.7 GB for 13 MB resident, and does not start
// under a smaller RLIMIT_AS). A plugin that allocates without bound then
// dies of the Go runtime's "out of memory", which is logged; the call
// fails with UNAVAILABLE and the next call restarts it, under the same
// limit. It bounds address-space growth, not resident memory: a cgroup's
// memory.max would, where the agent has a delegated cgroup v2.
//
// # Host services and logs
//
// Config.Services are served on go-plugin's broker; their broker id goes
// to the plugin in DescribeRequest.host_broker_id. A plugin without the
// HTTP grant gets PERMISSION_DENIED from it. The plugin's stderr (hclog
// JSON lines) and its forwarded stdout and stderr are re-emitted through
// Services.Logger: tagged component=plugin plugin=<Name>, at the line's
// level (trace is below debug), rate limited. Before that, what a plugin
// prints is bounded here, in bytes as well as lines: control bytes (ESC,
// BEL, CR, DEL, C1) and invalid UTF-8 are escaped as \xNN; a line is cut
// at MaxOutputLine (8 KiB) with a marker giving its length, and never
// buffered beyond that; stdout and stderr share token buckets of
// OutputBytesPerSecond (64 KiB/s, burst 256 KiB) and OutputLinesPerSecond
// (50/s, burst 100), and what they drop is summarised in one warning,
// "plugin output dropped by the rate limit", at most once per
// DropSummaryInterval (1 s) with the lines and bytes dropped.
package subproc
