package envtest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes cmd die with the test binary, so that a test killed
// by its timeout leaves no controller manager behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
