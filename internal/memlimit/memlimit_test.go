package memlimit

import "testing"

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"268435456\n", 268435456, true},    // cgroup v2 with limits.memory: 256Mi
		{"max\n", 0, false},                 // cgroup v2 without a limit
		{"9223372036854771712\n", 0, false}, // cgroup v1 without a limit
		{"", 0, false},
		{"0", 0, false},
	} {
		got, ok := parseLimit(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseLimit(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestSoftLeavesRoomBelowTheLimit(t *testing.T) {
	const limit = 256 << 20
	if s := Soft(limit); s >= limit || s < limit*8/10 {
		t.Errorf("Soft(256 MiB) = %d, want a bit below the limit", s)
	}
	if got, want := Env(limit), "241591910B"; got != want {
		t.Errorf("Env(256 MiB) = %q, want %q (GOMEMLIMIT's syntax)", got, want)
	}
}
