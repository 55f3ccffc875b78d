package archiver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
)

// TestBeforeSelector: before:T is the newest backup that finished at or
// before T, on the recorded end time; a time before every backup is "no
// backup", and an unreadable manifest that could be the answer fails the
// resolve instead of being skipped.
func TestBeforeSelector(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	r := newRepoBuilder(t, b, "p")
	first := r.backup("a", "")
	second := r.backup("a", "")
	third := r.backup("a", "")
	at := func(m *archiver.Manifest, d time.Duration) string {
		return archiver.BeforePrefix + m.EndTime.Add(d).Format(time.RFC3339Nano)
	}
	for _, c := range []struct {
		sel  string
		want string
	}{
		{at(first, 0), first.ID},             // at the end time itself
		{at(second, -time.Second), first.ID}, // between the first and the second
		{at(second, 30*time.Second), second.ID},
		{at(third, time.Hour), third.ID},
		{"latest", third.ID},
		{second.ID, second.ID},
	} {
		m, err := archiver.Resolve(ctx, b, "p", c.sel, archiver.SetFilter{})
		if err != nil || m.ID != c.want {
			t.Errorf("Resolve(%s) = %v, %v; want %s", c.sel, m, err, c.want)
		}
	}
	if m, err := archiver.Resolve(ctx, b, "p", at(first, -time.Second), archiver.SetFilter{}); !errors.Is(err, archiver.ErrNoBackup) {
		t.Errorf("Resolve before the first backup = %v, %v; want ErrNoBackup", m, err)
	}

	// The second backup's manifest is damaged: before a time after it
	// cannot know whether the second is the answer, so it fails naming it;
	// before a time it started after still resolves.
	if err := os.WriteFile(filepath.Join(dir, "p", second.ID, archiver.ManifestObject), []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := archiver.Resolve(ctx, b, "p", at(second, 30*time.Second), archiver.SetFilter{}); err == nil || !strings.Contains(err.Error(), second.ID) {
		t.Errorf("Resolve across an unreadable manifest = %v, %v; want an error naming %s", m, err, second.ID)
	}
	if m, err := archiver.Resolve(ctx, b, "p", at(second, -time.Second), archiver.SetFilter{}); err != nil || m.ID != first.ID {
		t.Errorf("Resolve before the unreadable backup started = %v, %v; want %s", m, err, first.ID)
	}
}

func TestCheckSelector(t *testing.T) {
	for _, ok := range []string{"", "latest", "20261129T030000.000Z-0123abcd", "before:2026-11-29T03:00:00Z", "before:2026-11-29T03:00:00.5+01:00"} {
		if err := archiver.CheckSelector(ok); err != nil {
			t.Errorf("CheckSelector(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"../x", "before:", "before:yesterday", "before:2026-11-29", "LATEST", "20261129T030000.000Z-0123abcd/../x"} {
		if err := archiver.CheckSelector(bad); err == nil {
			t.Errorf("CheckSelector(%q) = nil, want an error", bad)
		}
	}
}
