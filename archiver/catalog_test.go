package archiver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
)

// setSource is a source of a given database, so tests can fill a repo with
// backups of several sets.
type setSource struct {
	funcSource
	db string
}

func (s setSource) Database() string { return s.db }

// repoBuilder makes backups a minute apart on a fake clock, so their ids
// sort in the order they were made.
type repoBuilder struct {
	t      *testing.T
	b      *drivers.Bucket
	prefix string
	clock  time.Time
}

func newRepoBuilder(t *testing.T, b *drivers.Bucket, prefix string) *repoBuilder {
	return &repoBuilder{t: t, b: b, prefix: prefix, clock: time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)}
}

// backup makes a backup of database db under name.
func (r *repoBuilder) backup(db, name string) *archiver.Manifest {
	r.t.Helper()
	r.clock = r.clock.Add(time.Minute)
	now := r.clock
	src := setSource{funcSource: bytesSource(compressible(uint64(now.Unix()), 10_000)), db: db}
	m, err := archiver.Backup(context.Background(), r.b, src, archiver.BackupOptions{Prefix: r.prefix, Name: name, Now: func() time.Time { return now }})
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func ids(ms []*archiver.Manifest) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestLatestFailsOnUnreadableNewest: when the newest manifest cannot be
// read, latest fails naming that backup instead of quietly taking an older
// one; the older one is still reachable by id, and List skips the damaged
// one with a problem that names it.
func TestLatestFailsOnUnreadableNewest(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	r := newRepoBuilder(t, b, "p")
	older := r.backup("a", "")
	newest := r.backup("a", "")
	if err := os.WriteFile(filepath.Join(dir, "p", newest.ID, archiver.ManifestObject), []byte(`{"formatVersion":`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []archiver.SetFilter{{}, {Type: "exec", Database: "a"}} {
		m, err := archiver.Resolve(ctx, b, "p", "latest", f)
		if err == nil || !strings.Contains(err.Error(), newest.ID) {
			t.Fatalf("Resolve latest (%+v) = %v, %v; want an error naming the unreadable backup %s", f, m, err, newest.ID)
		}
	}
	if m, err := archiver.Resolve(ctx, b, "p", older.ID, archiver.SetFilter{}); err != nil || m.ID != older.ID {
		t.Fatalf("Resolve by id = %v, %v; want backup %s", m, err, older.ID)
	}
	listed, problems, err := archiver.List(ctx, b, "p")
	var ue *archiver.UnreadableError
	if err != nil || !slices.Equal(ids(listed), []string{older.ID}) || len(problems) != 1 || !errors.As(problems[0], &ue) || ue.ID != newest.ID {
		t.Fatalf("List = %v, %v, %v; want %s listed and %s reported", ids(listed), problems, err, older.ID, newest.ID)
	}
	// An unreadable manifest older than the newest readable one does not
	// stand in the way.
	newer := r.backup("a", "")
	if m, err := archiver.Resolve(ctx, b, "p", "latest", archiver.SetFilter{}); err != nil || m.ID != newer.ID {
		t.Fatalf("Resolve latest = %v, %v; want %s", m, err, newer.ID)
	}
}

// TestSetsForLatestAndPrune: one backup of database a, three of b, one of a
// named nightly. Prune keeps N per set, latest resolves within the set the
// filter names and refuses when it names none of several.
func TestSetsForLatestAndPrune(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	r := newRepoBuilder(t, b, "")
	a1 := r.backup("a", "")
	b1, b2, b3 := r.backup("b", ""), r.backup("b", ""), r.backup("b", "")
	n1 := r.backup("a", "nightly")

	_, err := archiver.Resolve(ctx, b, "", "latest", archiver.SetFilter{})
	if !errors.Is(err, archiver.ErrAmbiguousSet) || !strings.Contains(err.Error(), "exec/a") || !strings.Contains(err.Error(), "exec/b") || !strings.Contains(err.Error(), "exec/a name=nightly") {
		t.Fatalf("Resolve latest with no set named = %v, want ErrAmbiguousSet listing the three sets", err)
	}
	if _, err := archiver.Resolve(ctx, b, "", "latest", archiver.SetFilter{Database: "a"}); !errors.Is(err, archiver.ErrAmbiguousSet) {
		t.Fatalf("Resolve latest of database a (two names) = %v, want ErrAmbiguousSet", err)
	}
	for _, tc := range []struct {
		f    archiver.SetFilter
		want string
	}{
		{archiver.SetFilter{Database: "a", HasName: true}, a1.ID},
		{archiver.SetFilter{Type: "exec", Database: "b"}, b3.ID},
		{archiver.SetFilter{Name: "nightly", HasName: true}, n1.ID},
	} {
		m, err := archiver.Resolve(ctx, b, "", "latest", tc.f)
		if err != nil || m.ID != tc.want {
			t.Errorf("Resolve latest of %+v = %v, %v; want %s", tc.f, m, err, tc.want)
		}
	}
	if _, err := archiver.Resolve(ctx, b, "", "latest", archiver.SetFilter{Database: "c"}); !errors.Is(err, archiver.ErrNoBackup) {
		t.Errorf("Resolve latest of database c = %v, want ErrNoBackup", err)
	}
	if _, err := archiver.Resolve(ctx, b, "", b3.ID, archiver.SetFilter{Database: "a"}); err == nil || !strings.Contains(err.Error(), "exec/b") {
		t.Errorf("Resolve of a backup of b asking for a = %v, want an error naming its set", err)
	}

	res, err := archiver.Prune(ctx, b, "", archiver.Retention{KeepLast: 2, Now: r.clock.Add(time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(res.Deleted), []string{b1.ID}) || !slices.Equal(ids(res.Kept), []string{a1.ID, b2.ID, b3.ID, n1.ID}) {
		t.Fatalf("prune --keep-last 2 deleted %v and kept %v; want only %s deleted", ids(res.Deleted), ids(res.Kept), b1.ID)
	}
	listed, _, _ := archiver.List(ctx, b, "")
	if !slices.Equal(ids(listed), []string{a1.ID, b2.ID, b3.ID, n1.ID}) {
		t.Fatalf("after prune the repo lists %v", ids(listed))
	}
}

// TestPruneCountsOnlyCompleteBackups: a listed backup whose data or parts
// object is gone or cut short is no backup to keep: it does not count
// toward --keep-last, is reported, and is removed once older than the grace
// period; the newest complete backup is never pruned because of it.
func TestPruneCountsOnlyCompleteBackups(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	r := newRepoBuilder(t, b, "p")
	good1, good2 := r.backup("a", ""), r.backup("a", "")
	noData, short, noParts := r.backup("a", ""), r.backup("a", ""), r.backup("a", "")
	backupFile := func(m *archiver.Manifest, name string) string { return filepath.Join(dir, "p", m.ID, name) }
	if err := os.Remove(backupFile(noData, archiver.DataObject)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backupFile(short, archiver.DataObject), short.StoredSize-1); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(backupFile(noParts, archiver.PartsObject)); err != nil {
		t.Fatal(err)
	}
	broken := []string{noData.ID, short.ID, noParts.ID}

	// Within the grace period the broken backups are reported and left.
	res, err := archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, Now: r.clock.Add(time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var reported []string
	for _, in := range res.Incomplete {
		reported = append(reported, in.Manifest.ID)
		if in.Reason == "" {
			t.Errorf("incomplete backup %s has no reason", in.Manifest.ID)
		}
	}
	if !slices.Equal(reported, broken) {
		t.Fatalf("incomplete backups reported: %v, want %v", reported, broken)
	}
	if !slices.Equal(ids(res.Kept), []string{good2.ID}) || !slices.Equal(ids(res.Deleted), []string{good1.ID}) {
		t.Fatalf("prune kept %v and deleted %v; want %s kept, %s deleted", ids(res.Kept), ids(res.Deleted), good2.ID, good1.ID)
	}
	if err := archiver.Verify(ctx, b, good2, archiver.RestoreOptions{Prefix: "p"}); err != nil {
		t.Fatalf("the kept backup does not verify: %v", err)
	}

	// After the grace period they are removed; the good backup stays.
	res, err = archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, Now: r.clock.Add(archiver.DefaultGrace + time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(res.Deleted), broken) || !slices.Equal(ids(res.Kept), []string{good2.ID}) {
		t.Fatalf("prune after the grace period deleted %v and kept %v; want %v deleted", ids(res.Deleted), ids(res.Kept), broken)
	}
	listed, _, _ := archiver.List(ctx, b, "p")
	if !slices.Equal(ids(listed), []string{good2.ID}) {
		t.Fatalf("the repo lists %v, want only %s", ids(listed), good2.ID)
	}
	for _, id := range broken {
		if _, err := os.Stat(filepath.Join(dir, "p", id)); !os.IsNotExist(err) {
			if entries, _ := os.ReadDir(filepath.Join(dir, "p", id)); len(entries) > 0 {
				t.Errorf("objects of the removed backup %s remain", id)
			}
		}
	}
}
