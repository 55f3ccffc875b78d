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
	opts, err := managerOptions(nil, "team-a, team-b")
	if err != nil || len(opts.Cache.DefaultNamespaces) != 2 {
		t.Fatalf("managerOptions(team-a, team-b) = %v, %v", opts.Cache.DefaultNamespaces, err)
	}
	if _, err := managerOptions(nil, "Team_A"); err == nil || !strings.Contains(err.Error(), "--watch-namespace") {
		t.Fatalf("managerOptions(Team_A) = %v, want an error naming --watch-namespace", err)
	}
	opts, err = managerOptions(nil, "")
	if err != nil || opts.Cache.DefaultNamespaces != nil {
		t.Fatalf("managerOptions(\"\") = %v, %v; want all namespaces", opts.Cache.DefaultNamespaces, err)
	}
	if len(opts.Cache.ByObject) == 0 {
		t.Fatal("managerOptions: the caches of the kinds the operator creates are not narrowed to its own objects")
	}
}
