// Package residency trims what a long-running svidagent keeps resident
// once it has started.
//
// A Go binary is mapped from its file. At start-up the kernel maps its
// pages as they are touched, and with them, by fault-around, up to 64 KiB
// of neighbours each time: after the first delivery most of the binary's
// text and read-only data is resident (about 18 MiB of the daemon's 21 MiB
// at stop 18), though an idle agent runs a small part of it. Those pages
// are clean copies of the page cache. [ReleaseExecutable] unmaps them from
// the process; the page cache keeps them, and the process faults back in,
// from the cache, the pages it uses next. What the process holds is then
// what it uses: smaller in RSS, in the OOM killer's score (which counts
// file pages), and easier for the kernel to reclaim under pressure.
//
// Only clean, read-only, private mappings of the executable are touched: a
// mapping with any private copy (a page written before it was made
// read-only, as relocations are, or a debugger's breakpoint) is left
// whole, since dropping it would bring back the file's bytes.
package residency
