//go:build unix

package fs

import (
	"os"
	"syscall"
)

// removed reports whether the directory root is open on has been removed
// (its link count is zero): the repo's volume was unmounted or its
// directory deleted under a running backup.
func removed(root *os.Root) bool {
	st, err := root.Stat(".")
	if err != nil {
		return true
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Nlink == 0
}
