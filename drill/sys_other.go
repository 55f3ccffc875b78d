//go:build !linux

package drill

import "syscall"

// sysProcAttr puts the server in its own process group so Stop reaches its
// children. Without Linux's parent-death signal, a dbarchive killed with
// SIGKILL leaves the server running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
