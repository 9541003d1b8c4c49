package proc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The reaper is the agent's own executable, re-run through /proc/self/exe,
// between the agent and a command: it is a child subreaper
// (PR_SET_CHILD_SUBREAPER), so every process the command leaves behind,
// in whatever session or group, is re-parented to it and stays in its
// reach; and it watches a pipe from the agent, whose end the kernel closes
// however the agent dies, SIGKILL included. It runs in the init of this
// package, before main, in any binary that links it.
//
// Protocol: argv is [reaperArg0, path, argv0, args...]; the environment
// carries envReaper=1 (removed for the command); fd 3 is the control pipe
// (the agent writes "stop <grace in ns>\n" and closes it; EOF alone means
// the agent died); fd 4 is the report pipe (the reaper writes
// "pid <n>\n" once the command runs, or "error <errno or 0> <text>\n";
// and "killed\n"
// when the stop needed SIGKILL).
const (
	envReaper  = "SVIDAGENT_PROC_REAPER"
	reaperArg0 = "svidagent-reaper"
)

// Reaper timings.
const (
	// orphanGrace is the grace the reaper gives the command and its
	// descendants between SIGTERM and SIGKILL when the agent died, and
	// the command's descendants when the command exited by itself.
	orphanGrace = 5 * time.Second
	// reaperMargin is how much longer than its grace Stop waits for the
	// reaper before it SIGKILLs it.
	reaperMargin = 2 * time.Second
	// descendantPoll is how often the reaper looks, while it stops them,
	// whether descendants that are not its children are gone (it gets
	// SIGCHLD for its children only).
	descendantPoll = 10 * time.Millisecond
)

func init() {
	if os.Getenv(envReaper) != "1" || len(os.Args) < 3 || os.Args[0] != reaperArg0 {
		return
	}
	os.Exit(reaperMain(os.Args[1], os.Args[2:]))
}

// reaperMain starts path with argv, forwards signals to it, reaps
// everything re-parented to it, and stops all of it when told to or when
// the agent dies. It exits as the command did.
func reaperMain(path string, argv []string) int {
	// The command gets SIGKILL if the thread that forked it exits: only if
	// the reaper dies, since this thread stays locked.
	runtime.LockOSThread()
	report := os.NewFile(4, "report")
	ctl := os.NewFile(3, "control")
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(report, "error 0 becoming a subreaper: %v\n", err)
		return 127
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // before the fork: no SIGCHLD is missed

	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envReaper+"=") {
			env = append(env, kv)
		}
	}
	r := &reaper{self: os.Getpid(), sigs: sigs}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		fmt.Fprintf(report, "error %d %v\n", int(errno), err)
		return 127
	}
	r.child = pid
	fmt.Fprintf(report, "pid %d\n", pid)

	ctlc := make(chan ctlMsg)
	go readControl(ctl, ctlc)
	r.ctl, r.report = ctlc, report
	for !r.childDone {
		select {
		case s := <-sigs:
			r.forward(s.(syscall.Signal))
		case m := <-ctlc:
			if !m.stop {
				r.answer(m.sig)
				continue
			}
			if r.terminate(m.grace) {
				fmt.Fprintln(report, "killed")
			}
			return r.exit()
		}
	}
	// The command exited by itself: what it left behind goes too.
	if r.terminate(orphanGrace) {
		fmt.Fprintln(report, "killed")
	}
	return r.exit()
}

// ctlMsg is one message of the control pipe.
type ctlMsg struct {
	sig   syscall.Signal // "signal <n>": send the command sig and answer
	stop  bool           // "stop <grace>", or EOF (the agent died)
	grace time.Duration
}

// readControl turns the control pipe into messages, until a stop.
func readControl(ctl *os.File, c chan<- ctlMsg) {
	br := bufio.NewReader(ctl)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c <- ctlMsg{stop: true, grace: orphanGrace}
			return
		}
		var n int64
		switch {
		case sscan(line, "signal %d", &n):
			c <- ctlMsg{sig: syscall.Signal(n)}
		case sscan(line, "stop %d", &n):
			c <- ctlMsg{stop: true, grace: time.Duration(n)}
			return
		}
	}
}

func sscan(line, format string, n *int64) bool {
	_, err := fmt.Sscanf(line, format, n)
	return err == nil
}

type reaper struct {
	self, child int
	sigs        chan os.Signal
	ctl         <-chan ctlMsg
	report      *os.File
	childDone   bool
	status      syscall.WaitStatus
}

// forward passes a signal the reaper received on to the command.
func (r *reaper) forward(sig syscall.Signal) {
	switch sig {
	case syscall.SIGCHLD:
		r.reap()
	case syscall.SIGURG, syscall.SIGPIPE: // the Go runtime's own
	default:
		if !r.childDone {
			_ = syscall.Kill(r.child, sig)
		}
	}
}

// answer sends the command sig for the agent and reports how it went:
// "ok", "gone" once the command has been reaped, or "error <errno>".
func (r *reaper) answer(sig syscall.Signal) {
	r.reap()
	if r.childDone {
		fmt.Fprintln(r.report, "gone")
		return
	}
	if err := syscall.Kill(r.child, sig); err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		fmt.Fprintf(r.report, "error %d\n", int(errno))
		return
	}
	fmt.Fprintln(r.report, "ok")
}

// reap waits for every child that has exited, without blocking.
func (r *reaper) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if pid == r.child {
			r.childDone, r.status = true, ws
		}
	}
}

// terminate sends SIGTERM to every descendant, then, after grace,
// SIGKILL to those left, until none is left; it reports whether SIGKILL
// was needed. Meanwhile it answers the agent's signal requests ("gone"
// once the command is reaped), and a stop with a shorter grace shortens
// it.
func (r *reaper) terminate(grace time.Duration) (killed bool) {
	deadline := time.Now().Add(grace)
	termed := map[int]bool{}
	tick := time.NewTicker(descendantPoll)
	defer tick.Stop()
	for {
		r.reap()
		ds := descendantsOf(r.self)
		if len(ds) == 0 {
			// Every zombie left was re-parented to the reaper before it
			// became one: collect them.
			r.reap()
			return killed
		}
		late := !time.Now().Before(deadline)
		for _, pid := range ds {
			switch {
			case late:
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed = true
			case !termed[pid]:
				_ = syscall.Kill(pid, syscall.SIGTERM)
				termed[pid] = true
			}
		}
		select {
		case <-r.sigs: // SIGCHLD, or a signal that no longer matters
		case m := <-r.ctl:
			if !m.stop {
				r.answer(m.sig)
			} else if d := time.Now().Add(m.grace); d.Before(deadline) {
				deadline = d
			}
		case <-tick.C:
		}
	}
}

// exit returns the command's exit code, or dies by the signal that killed
// the command where the Go runtime lets it (SIGHUP, SIGINT, SIGTERM,
// SIGKILL), so that the agent sees the same status; other signals give
// 128 + the signal's number, as a shell reports them.
func (r *reaper) exit() int {
	for !r.childDone { // dead, but maybe not yet reaped
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(r.child, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 128 + int(syscall.SIGKILL)
		}
		if pid == r.child {
			r.childDone, r.status = true, ws
		}
	}
	if r.status.Exited() {
		return r.status.ExitStatus()
	}
	sig := r.status.Signal()
	switch sig {
	case syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL:
		signal.Reset(sig)
		_ = syscall.Kill(r.self, sig)
		time.Sleep(time.Second) // the signal is on its way; this is a fallback
	}
	return 128 + int(sig)
}

// descendantsOf returns the live (not zombie) processes whose parent chain
// reaches root, from /proc.
func descendantsOf(root int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	type node struct {
		ppid int
		live bool
	}
	procs := make(map[int]node, len(stats))
	for _, path := range stats {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil {
			continue
		}
		if st, ok := readStat(path); ok {
			procs[pid] = node{ppid: st.ppid, live: st.state != 'Z' && st.state != 'X'}
		}
	}
	var out []int
	for pid, n := range procs {
		if !n.live {
			continue
		}
		for p, hops := n.ppid, 0; p > 1 && hops < 1024; hops++ {
			if p == root {
				out = append(out, pid)
				break
			}
			next, ok := procs[p]
			if !ok {
				break
			}
			p = next.ppid
		}
	}
	return out
}
