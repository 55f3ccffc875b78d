//go:build !unix

package sources

import "os/exec"

func ownProcessGroup(*exec.Cmd) {}

// killTree kills the tool itself; without process groups its children may
// outlive it.
func killTree(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
