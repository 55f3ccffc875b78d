package main

import (
	"strings"
	"testing"
)

// The default job image is the job image of the operator's own version, not
// a moving :latest.
func TestDefaultJobImageFollowsVersion(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v1.4.2"
	if got := defaultJobImageFlag(); got != "ghcr.io/dbarchive/dbarchive:v1.4.2" {
		t.Fatalf("default --job-image = %q, want the job image of v1.4.2", got)
	}
}

func TestWatchNamespaceIsChecked(t *testing.T) {
	opts, err := cacheOptions("team-a, team-b")
	if err != nil || len(opts.DefaultNamespaces) != 2 {
		t.Fatalf("cacheOptions(team-a, team-b) = %v, %v", opts.DefaultNamespaces, err)
	}
	if _, err := cacheOptions("Team_A"); err == nil || !strings.Contains(err.Error(), "--watch-namespace") {
		t.Fatalf("cacheOptions(Team_A) = %v, want an error naming --watch-namespace", err)
	}
	opts, err = cacheOptions("")
	if err != nil || opts.DefaultNamespaces != nil {
		t.Fatalf("cacheOptions(\"\") = %v, %v; want all namespaces", opts.DefaultNamespaces, err)
	}
}
