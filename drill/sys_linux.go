package drill

import "syscall"

// sysProcAttr puts the server in its own process group (so Stop reaches
// its children) and has the kernel kill it when dbarchive dies, even by
// SIGKILL, so no server outlives the drill.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}
