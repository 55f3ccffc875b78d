//go:build linux

package sources

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// dieWithParent makes the kernel kill the tool when dbarchive dies, even by
// SIGKILL, which no handler of ours sees: a restore tool that outlived us
// would take its closed stdin for a clean end of input. (The signal follows
// the OS thread that started the tool; the Go runtime does not end threads
// while this package's goroutines run on them, as it never locks one.)
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// growPipe raises the capacity of a pipe to a tool from 64 KiB to 1 MiB:
// a dump or restore streams gigabytes through it, and a larger pipe means
// fewer wake-ups of the side that waits. Best effort: a smaller limit
// (/proc/sys/fs/pipe-max-size) leaves the pipe as it was.
func growPipe(p any) {
	if f, ok := p.(interface{ Fd() uintptr }); ok {
		_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
}
