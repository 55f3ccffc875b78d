//go:build linux

package sources

import (
	"os/exec"
	"syscall"
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
