package archiver

import "testing"

// TestStallDetectionOnByDefault: the zero value of BackupOptions watches for
// a stalled pipeline; only a negative timeout turns it off.
func TestStallDetectionOnByDefault(t *testing.T) {
	if got := (BackupOptions{}).withDefaults().StallTimeout; got != DefaultStallTimeout || got <= 0 {
		t.Fatalf("default StallTimeout = %s, want %s", got, DefaultStallTimeout)
	}
	if got := (BackupOptions{StallTimeout: -1}).withDefaults().StallTimeout; got > 0 {
		t.Fatalf("StallTimeout -1 became %s; a negative value must keep detection off", got)
	}
}
