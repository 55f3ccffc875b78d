//go:build unix

package sources

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup puts the tool in a new process group, so that killing the
// group also kills what the tool started (sh -c pipelines under exec:), and
// a terminal's Ctrl-C reaches dbarchive, which then aborts in order.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killTree sends SIGKILL to the tool's process group. The group id is the
// tool's pid, which the kernel does not reuse while the group has members.
func killTree(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err == syscall.ESRCH {
		return nil
	}
	return err
}
