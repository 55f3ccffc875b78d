package fs

import "os"

// SetAfterAppend installs a hook Complete calls after each part is appended
// and deleted, and returns a function that removes it.
func SetAfterAppend(f func(n int)) (restore func()) {
	old := afterAppend
	afterAppend = f
	return func() { afterAppend = old }
}

// SetSyncDir replaces the directory sync of Complete.
func SetSyncDir(f func(*os.File) error) (restore func()) {
	old := syncDir
	syncDir = f
	return func() { syncDir = old }
}
