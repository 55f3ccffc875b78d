package archiver_test

import (
	"bytes"
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

// putObject stores data under key in one part.
func putObject(t *testing.T, b *drivers.Bucket, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, data); err != nil {
		t.Fatal(err)
	}
	if err := u.Complete(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

func keys(objs []drivers.ObjectInfo) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

// TestListSeesOnlyBackups: List shows the backups under its prefix, oldest
// first, and nothing else: not a backup directory without a manifest, not a
// manifest deeper in a backup's directory or under a directory that is no
// backup id, not the backups of another prefix.
func TestListSeesOnlyBackups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := openFS(t)
	r := newRepoBuilder(t, b, "p")
	first, second := r.backup("a", ""), r.backup("b", "")
	other := newRepoBuilder(t, b, "p2")
	other.clock = r.clock
	elsewhere := other.backup("a", "")
	manifest, err := second.Encode()
	if err != nil {
		t.Fatal(err)
	}
	leftover := archiver.NewID(r.clock.Add(time.Minute))
	putObject(t, b, "p/"+leftover+"/"+archiver.DataObject, []byte("data of a backup that never finished"))
	putObject(t, b, "p/"+first.ID+"/verify/"+archiver.ManifestObject, manifest)
	putObject(t, b, "p/not-an-id/"+archiver.ManifestObject, manifest)
	putObject(t, b, "p/"+archiver.ManifestObject, manifest)
	listed, problems, err := archiver.List(ctx, b, "p")
	if err != nil || len(problems) != 0 || !slices.Equal(ids(listed), []string{first.ID, second.ID}) {
		t.Fatalf("List(p) = %v, %v, %v; want %s and %s", ids(listed), problems, err, first.ID, second.ID)
	}
	for _, prefix := range []string{"p2", "/p2/", "p2/"} {
		listed, _, err = archiver.List(ctx, b, prefix)
		if err != nil || !slices.Equal(ids(listed), []string{elsewhere.ID}) {
			t.Fatalf("List(%q) = %v, %v; want only %s", prefix, ids(listed), err, elsewhere.ID)
		}
	}
	if m, err := archiver.ReadManifest(ctx, b, "p", leftover); !errors.Is(err, archiver.ErrNoBackup) || drivers.CodeOf(err) != drivers.NotFound || m != nil {
		t.Fatalf("ReadManifest of a backup without a manifest = %v, %v; want ErrNoBackup, NotFound", m, err)
	}
	if _, err := archiver.ReadManifest(ctx, b, "p", "../p2/"+elsewhere.ID); !errors.Is(err, archiver.ErrNoBackup) {
		t.Fatalf("ReadManifest of a path = %v, want ErrNoBackup", err)
	}
}

// TestReadManifestRefusesForeignManifests: a manifest that names another
// backup (copied from elsewhere) or is too large to be one is not read as
// the backup's, and List reports it, naming the backup, instead of listing
// it.
func TestReadManifestRefusesForeignManifests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	r := newRepoBuilder(t, b, "p")
	one, two, three := r.backup("a", ""), r.backup("a", ""), r.backup("a", "")
	copied, err := os.ReadFile(filepath.Join(dir, "p", one.ID, archiver.ManifestObject))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p", two.ID, archiver.ManifestObject), copied, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := append(bytes.Repeat([]byte(" "), 1<<20), copied...)
	if err := os.WriteFile(filepath.Join(dir, "p", three.ID, archiver.ManifestObject), huge, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := archiver.ReadManifest(ctx, b, "p", two.ID); err == nil || !strings.Contains(err.Error(), "manifest names backup "+one.ID) {
		t.Fatalf("ReadManifest of a copied manifest = %v, want an error naming both backups", err)
	}
	if _, err := archiver.ReadManifest(ctx, b, "p", three.ID); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ReadManifest of a 1 MiB manifest = %v, want it refused as too large", err)
	}
	// 1 MiB exactly is the most a manifest may be.
	own, err := three.Encode()
	if err != nil {
		t.Fatal(err)
	}
	padded := append(bytes.Repeat([]byte(" "), 1<<20-len(own)), own...)
	if err := os.WriteFile(filepath.Join(dir, "p", three.ID, archiver.ManifestObject), padded, 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := archiver.ReadManifest(ctx, b, "p", three.ID); err != nil || m.ID != three.ID {
		t.Fatalf("ReadManifest of a manifest of exactly 1 MiB = %v, %v; want it read", m, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p", three.ID, archiver.ManifestObject), huge, 0o600); err != nil {
		t.Fatal(err)
	}
	listed, problems, err := archiver.List(ctx, b, "p")
	var ue1, ue2 *archiver.UnreadableError
	if err != nil || !slices.Equal(ids(listed), []string{one.ID}) || len(problems) != 2 ||
		!errors.As(problems[0], &ue1) || !errors.As(problems[1], &ue2) || !slices.Contains([]string{ue1.ID, ue2.ID}, two.ID) || !slices.Contains([]string{ue1.ID, ue2.ID}, three.ID) {
		t.Fatalf("List = %v, problems %v, %v; want %s listed and the other two reported", ids(listed), problems, err, one.ID)
	}
	if !strings.Contains(problems[0].Error(), "backup ") {
		t.Fatalf("problem %q does not name the backup", problems[0])
	}
	// latest cannot know which backup is newest: it fails naming them.
	_, err = archiver.Resolve(ctx, b, "p", "latest", archiver.SetFilter{})
	if err == nil || !strings.Contains(err.Error(), "the newest readable one is "+one.ID) {
		t.Fatalf("Resolve latest = %v, want a failure naming the newest readable backup", err)
	}
}

// TestResolveErrorsNameWhatWasAsked: latest of a set the repo does not hold
// says which set was asked for and under which prefix; an empty repo says
// so; a repo whose only manifest is unreadable names no readable backup.
func TestResolveErrorsNameWhatWasAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	_, err := archiver.Resolve(ctx, b, "p", "", archiver.SetFilter{})
	if !errors.Is(err, archiver.ErrNoBackup) || !strings.Contains(err.Error(), `the repo holds no backup under "p/"`) {
		t.Fatalf("Resolve in an empty repo = %v", err)
	}
	r := newRepoBuilder(t, b, "p")
	m := r.backup("a", "nightly")
	_, err = archiver.Resolve(ctx, b, "p", "latest", archiver.SetFilter{Type: "postgres", Database: "a", Name: "", HasName: true})
	if !errors.Is(err, archiver.ErrNoBackup) || !strings.Contains(err.Error(), `no backup of type postgres, database a, name "" under "p/"`) {
		t.Fatalf("Resolve of another set = %v, want ErrNoBackup naming the set asked for", err)
	}
	got, err := archiver.Resolve(ctx, b, "p", "", archiver.SetFilter{Type: "exec"})
	if err != nil || got.ID != m.ID || got.Set().String() != "exec/a name=nightly" {
		t.Fatalf("Resolve latest of type exec = %v, %v; want %s", got, err, m.ID)
	}
	if s := (archiver.Set{Type: "http"}).String(); s != "http" {
		t.Fatalf("a set without database or name shows as %q, want http", s)
	}
	if err := os.WriteFile(filepath.Join(dir, "p", m.ID, archiver.ManifestObject), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = archiver.Resolve(ctx, b, "p", "latest", archiver.SetFilter{})
	if err == nil || errors.Is(err, archiver.ErrNoBackup) || !strings.Contains(err.Error(), "no readable backup") || !strings.Contains(err.Error(), m.ID) {
		t.Fatalf("Resolve latest with only an unreadable manifest = %v, want a failure naming it", err)
	}
}

// TestPruneKeepWithin: --keep-within keeps every complete backup that
// finished within the duration before now, per set, plus the newest of each
// set; a backup that finished exactly that long ago is still within it.
func TestPruneKeepWithin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := openFS(t)
	r := newRepoBuilder(t, b, "")
	a1, a2, a3, a4 := r.backup("a", ""), r.backup("a", ""), r.backup("a", ""), r.backup("a", "")
	b1 := r.backup("b", "")
	now := r.clock.Add(10 * time.Minute)
	// a3 finished 12 minutes before now, a2 13: keep within 12 minutes.
	res, err := archiver.Prune(ctx, b, "", archiver.Retention{KeepWithin: now.Sub(a3.EndTime), Now: now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(res.Kept), []string{a3.ID, a4.ID, b1.ID}) || !slices.Equal(ids(res.Deleted), []string{a1.ID, a2.ID}) {
		t.Fatalf("prune --keep-within kept %v and deleted %v", ids(res.Kept), ids(res.Deleted))
	}
	listed, _, _ := archiver.List(ctx, b, "")
	if !slices.Equal(ids(listed), ids(res.Kept)) {
		t.Fatalf("after prune the repo lists %v", ids(listed))
	}
	// A rule that keeps nothing still keeps the newest backup of each set.
	res, err = archiver.Prune(ctx, b, "", archiver.Retention{KeepWithin: time.Second, Now: now}, nil)
	if err != nil || !slices.Equal(ids(res.Kept), []string{a4.ID, b1.ID}) || !slices.Equal(ids(res.Deleted), []string{a3.ID}) {
		t.Fatalf("prune --keep-within 1s kept %v and deleted %v, %v; want the newest of each set kept", ids(res.Kept), ids(res.Deleted), err)
	}
	if _, err := archiver.Prune(ctx, b, "", archiver.Retention{}, nil); err == nil || !strings.Contains(err.Error(), "keep-last or keep-within") {
		t.Fatalf("Prune without a rule = %v, want a refusal", err)
	}
}

// TestPruneSweepsLeftovers: what killed backups leave — objects in a backup
// directory without a manifest, uploads never completed — is removed once
// both the backup's start and the object are older than the grace period
// (24 hours unless set), never before, and nothing outside the repo's layout
// is touched. A dry run reports the same and changes nothing.
func TestPruneSweepsLeftovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	r := newRepoBuilder(t, b, "p")
	kept := r.backup("a", "")
	leftover := archiver.NewID(r.clock.Add(time.Minute))
	leftKeys := []string{"p/" + leftover + "/" + archiver.DataObject, "p/" + leftover + "/" + archiver.PartsObject}
	for _, k := range leftKeys {
		putObject(t, b, k, []byte("left by a killed backup"))
	}
	// Keys outside the layout: another prefix, no backup id, deeper than a
	// backup's own objects.
	foreign := []string{"elsewhere/" + leftover + "/" + archiver.DataObject, "p/README", "p/" + leftover + "/sub/object", "p/not-an-id/" + archiver.DataObject}
	for _, k := range foreign {
		putObject(t, b, k, []byte("not ours"))
	}
	pending, err := b.NewUpload(ctx, "p/"+archiver.NewID(r.clock.Add(2*time.Minute))+"/"+archiver.DataObject)
	if err != nil {
		t.Fatal(err)
	}
	if err := pending.PutPart(ctx, 1, []byte("never completed")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// A backup that started an hour before the prune, whose object is old
	// (a clock that jumped, a copied file): its start protects it.
	young := "p/" + archiver.NewID(now.Add(25*time.Hour-time.Hour)) + "/" + archiver.DataObject
	putObject(t, b, young, []byte("a backup still running"))
	if err := os.Chtimes(filepath.Join(dir, young), now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	state := func() ([]string, int) {
		t.Helper()
		objs, err := b.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		ups, err := b.ListUploads(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return keys(objs), len(ups)
	}
	before, _ := state()

	// 23 hours on, everything is within the default grace period.
	res, err := archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, Now: now.Add(23 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if objs, ups := state(); len(res.Swept) != 0 || len(res.Aborted) != 0 || !slices.Equal(objs, before) || ups != 1 {
		t.Fatalf("within the grace period prune swept %v, aborted %v; the repo holds %v, %d pending", res.Swept, res.Aborted, objs, ups)
	}
	// 25 hours on: a dry run reports, then a prune removes.
	for _, dry := range []bool{true, false} {
		res, err := archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, DryRun: dry, Now: now.Add(25 * time.Hour)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Swept, leftKeys) || len(res.Aborted) != 1 || !slices.Equal(ids(res.Kept), []string{kept.ID}) || len(res.Deleted) != 0 {
			t.Fatalf("dry run %v: swept %v, aborted %v, kept %v, deleted %v; want %v swept and the pending upload aborted", dry, res.Swept, res.Aborted, ids(res.Kept), ids(res.Deleted), leftKeys)
		}
		objs, ups := state()
		if dry && (!slices.Equal(objs, before) || ups != 1) {
			t.Fatalf("a dry run changed the repo: %v, %d pending", objs, ups)
		}
		if !dry {
			want := slices.DeleteFunc(slices.Clone(before), func(k string) bool { return slices.Contains(leftKeys, k) })
			if !slices.Equal(objs, want) || ups != 0 {
				t.Fatalf("after the sweep the repo holds %v, %d pending; want %v", objs, ups, want)
			}
		}
	}
	// A grace period of an hour: the young backup's object goes when its
	// start is an hour old, not before.
	youngStart, err := archiver.ParseID(strings.Split(young, "/")[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{time.Hour - time.Millisecond, time.Hour} {
		res, err = archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, Grace: time.Hour, Now: youngStart.Add(at)}, nil)
		if swept := slices.Equal(res.Swept, []string{young}); err != nil || swept != (at == time.Hour) || (!swept && len(res.Swept) != 0) {
			t.Fatalf("prune with a one-hour grace, %v after the start: swept %v, %v", at, res.Swept, err)
		}
	}
}

// TestIncompleteBackupRemovedAtGrace: an incomplete backup is removed once
// it finished the grace period ago, to the nanosecond, not later.
func TestIncompleteBackupRemovedAtGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	r := newRepoBuilder(t, b, "p")
	broken, good := r.backup("a", ""), r.backup("a", "")
	if err := os.Remove(filepath.Join(dir, "p", broken.ID, archiver.DataObject)); err != nil {
		t.Fatal(err)
	}
	res, err := archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 5, Now: broken.EndTime.Add(archiver.DefaultGrace - 1)}, nil)
	if err != nil || len(res.Deleted) != 0 || len(res.Incomplete) != 1 {
		t.Fatalf("a nanosecond before the grace period ends: deleted %v, incomplete %d, %v", ids(res.Deleted), len(res.Incomplete), err)
	}
	res, err = archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 5, Now: broken.EndTime.Add(archiver.DefaultGrace)}, nil)
	if err != nil || !slices.Equal(ids(res.Deleted), []string{broken.ID}) || !slices.Equal(ids(res.Kept), []string{good.ID}) {
		t.Fatalf("when the grace period ends: deleted %v, kept %v, %v; want %s deleted", ids(res.Deleted), ids(res.Kept), err, broken.ID)
	}
}

// listUploadsFails is the fs driver with a listing of pending uploads that
// the store refuses.
type listUploadsFails struct{ limitedDriver }

func (l *listUploadsFails) ListUploads(context.Context, string) ([]drivers.PendingUpload, error) {
	return nil, drivers.Errorf(drivers.PermissionDenied, "list uploads", "", errors.New("injected: access denied"))
}

// TestPruneReportsSweepFailure: a prune whose sweep cannot list the pending
// uploads fails with the store's error rather than reporting success.
func TestPruneReportsSweepFailure(t *testing.T) {
	t.Parallel()
	inner, dir := openFS(t)
	newRepoBuilder(t, inner, "p").backup("a", "")
	b := wrapFS(t, dir, &listUploadsFails{limitedDriver{limits: inner.Limits()}})
	_, err := archiver.Prune(context.Background(), b, "p", archiver.Retention{KeepLast: 1}, nil)
	if drivers.CodeOf(err) != drivers.PermissionDenied || !strings.Contains(err.Error(), "pending uploads") {
		t.Fatalf("Prune with a refused listing of uploads = %v, want the store's error", err)
	}
}

// TestSweepLooksAtEveryLeftover: the sweep decides object by object and
// upload by upload: a young one met first does not stop it from removing
// the old ones after it, and an object or upload exactly the grace period
// old is removed.
func TestSweepLooksAtEveryLeftover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	now := time.Now().Truncate(time.Second)
	start := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	// Listed in this order: a young leftover, then an old one.
	youngKey := "p/" + archiver.NewID(start) + "/" + archiver.DataObject
	oldKey := "p/" + archiver.NewID(start.Add(time.Minute)) + "/" + archiver.DataObject
	for _, k := range []string{youngKey, oldKey} {
		putObject(t, b, k, []byte("leftover"))
	}
	if err := os.Chtimes(filepath.Join(dir, oldKey), now.Add(-time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Pending uploads: the one listed last is the old one.
	for range 3 {
		if _, err := b.NewUpload(ctx, "p/"+archiver.NewID(start)+"/"+archiver.DataObject); err != nil {
			t.Fatal(err)
		}
	}
	ups, err := b.ListUploads(ctx, "p/")
	if err != nil || len(ups) != 3 {
		t.Fatalf("ListUploads = %v, %v", ups, err)
	}
	last := ups[len(ups)-1]
	if err := os.Chtimes(filepath.Join(dir, ".dbarchive-uploads", last.ID, "key"), now.Add(-time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	res, err := archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, Grace: time.Hour, Now: now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Swept, []string{oldKey}) || len(res.Aborted) != 1 || res.Aborted[0].ID != last.ID {
		t.Fatalf("swept %v and aborted %v; want %s swept and upload %s aborted", res.Swept, res.Aborted, oldKey, last.ID)
	}
}
