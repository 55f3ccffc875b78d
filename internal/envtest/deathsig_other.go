//go:build !linux

package envtest

import "os/exec"

func setDeathSignal(*exec.Cmd) {}
