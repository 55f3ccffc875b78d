package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dbarchive/dbarchive/drivers"
)

// maxManifestSize bounds what List reads for one manifest: a manifest is a
// few hundred bytes, and a huge object under that name is not one of ours.
const maxManifestSize = 1 << 20

// ErrNoBackup is returned when a repo holds no backup, or not the one asked.
var ErrNoBackup = errors.New("no such backup")

// List returns the backups under prefix, oldest first: every directory whose
// manifest reads and validates. Directories without a manifest are not
// backups. A manifest that cannot be read is reported in problems and
// skipped, so one damaged backup does not hide the others.
func List(ctx context.Context, b *drivers.Bucket, prefix string) (backups []*Manifest, problems []error, err error) {
	objs, err := b.List(ctx, prefixDir(prefix))
	if err != nil {
		return nil, nil, fmt.Errorf("list %q: %w", prefixDir(prefix), err)
	}
	var ids []string
	for _, o := range objs {
		if id, name, ok := splitBackupKey(prefix, o.Key); ok && name == ManifestObject {
			ids = append(ids, id)
		}
	}
	manifests := make([]*Manifest, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			manifests[i], errs[i] = ReadManifest(ctx, b, prefix, id)
		})
	}
	wg.Wait()
	for i, m := range manifests {
		switch {
		case errs[i] != nil && drivers.CodeOf(errs[i]) == drivers.NotFound:
			// pruned while we listed
		case errs[i] != nil:
			problems = append(problems, errs[i])
		default:
			backups = append(backups, m)
		}
	}
	slices.SortFunc(backups, func(a, b *Manifest) int { return strings.Compare(a.ID, b.ID) })
	return backups, problems, nil
}

// splitBackupKey takes "<prefix>/<id>/<name>" apart; ok is false for keys
// that are not directly inside a backup directory.
func splitBackupKey(prefix, key string) (id, name string, ok bool) {
	rest, found := strings.CutPrefix(key, prefixDir(prefix))
	if !found {
		return "", "", false
	}
	id, name, found = strings.Cut(rest, "/")
	if !found || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	if _, err := ParseID(id); err != nil {
		return "", "", false
	}
	return id, name, true
}

// ReadManifest reads and validates the manifest of backup id. A missing
// manifest is an error whose code is NotFound and which wraps ErrNoBackup.
func ReadManifest(ctx context.Context, b *drivers.Bucket, prefix, id string) (*Manifest, error) {
	if _, err := ParseID(id); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBackup, err)
	}
	key := objectKey(prefix, id, ManifestObject)
	r, err := b.NewRangeReader(ctx, key, 0, -1)
	if err != nil {
		if drivers.CodeOf(err) == drivers.NotFound {
			return nil, errors.Join(fmt.Errorf("backup %s: %w", id, ErrNoBackup), err)
		}
		return nil, fmt.Errorf("backup %s: read manifest: %w", id, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("backup %s: read manifest: %w", id, err)
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("backup %s: manifest is larger than %d bytes", id, maxManifestSize)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("backup %s: manifest names backup %s", id, m.ID)
	}
	return m, nil
}

// Resolve finds one backup: "latest" (or "") is the newest listed one,
// anything else is a backup id.
func Resolve(ctx context.Context, b *drivers.Bucket, prefix, id string) (*Manifest, error) {
	if id != "" && id != "latest" {
		return ReadManifest(ctx, b, prefix, id)
	}
	backups, _, err := List(ctx, b, prefix)
	if err != nil {
		return nil, err
	}
	if len(backups) == 0 {
		return nil, fmt.Errorf("%w: the repo holds no backup under %q", ErrNoBackup, prefixDir(prefix))
	}
	return backups[len(backups)-1], nil
}

// Retention says which backups prune keeps. A backup is kept when any rule
// keeps it; the newest backup is always kept.
type Retention struct {
	// KeepLast keeps the newest N backups.
	KeepLast int
	// KeepWithin keeps backups that finished within this long before Now.
	KeepWithin time.Duration
	// Grace protects leftovers of backups that never got a manifest, and
	// pending uploads, younger than this: they may belong to a backup that
	// is still running. Default 24h.
	Grace time.Duration
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// Now is the clock (default time.Now).
	Now time.Time
}

// DefaultGrace is the age below which prune leaves unfinished work alone.
const DefaultGrace = 24 * time.Hour

// PruneResult reports what a prune did (or would do, in a dry run).
type PruneResult struct {
	Kept    []*Manifest
	Deleted []*Manifest
	// Swept are keys of objects that belonged to no finished backup.
	Swept []string
	// Aborted are pending uploads that were aborted.
	Aborted []drivers.PendingUpload
}

// Prune deletes the backups under prefix that the retention does not keep,
// removes leftovers of backups that never finished once they are older than
// the grace period, and aborts pending uploads older than that.
func Prune(ctx context.Context, b *drivers.Bucket, prefix string, r Retention, log *slog.Logger) (*PruneResult, error) {
	if r.KeepLast <= 0 && r.KeepWithin <= 0 {
		return nil, errors.New("prune needs a retention: keep-last or keep-within")
	}
	if r.Grace <= 0 {
		r.Grace = DefaultGrace
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if log == nil {
		log = slog.Default()
	}
	backups, problems, err := List(ctx, b, prefix)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		log.Warn("backup with an unreadable manifest is left alone", "error", p)
	}
	res := &PruneResult{}
	for i, m := range backups {
		newest := i == len(backups)-1
		keep := newest ||
			(r.KeepLast > 0 && i >= len(backups)-r.KeepLast) ||
			(r.KeepWithin > 0 && r.Now.Sub(m.EndTime) <= r.KeepWithin)
		if keep {
			res.Kept = append(res.Kept, m)
			continue
		}
		res.Deleted = append(res.Deleted, m)
		if !r.DryRun {
			if err := deleteBackup(ctx, b, prefix, m.ID); err != nil {
				return res, err
			}
			log.Info("backup pruned", "backup", m.ID)
		}
	}
	if err := sweep(ctx, b, prefix, r, res, log); err != nil {
		return res, err
	}
	return res, nil
}

// deleteBackup removes the manifest first, so that a prune interrupted
// half-way leaves an unlisted leftover, never a listed backup without data.
func deleteBackup(ctx context.Context, b *drivers.Bucket, prefix, id string) error {
	if err := b.Delete(ctx, objectKey(prefix, id, ManifestObject)); err != nil {
		return fmt.Errorf("prune backup %s: delete manifest: %w", id, err)
	}
	objs, err := b.List(ctx, backupDir(prefix, id))
	if err != nil {
		return fmt.Errorf("prune backup %s: %w", id, err)
	}
	for _, o := range objs {
		if err := b.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("prune backup %s: delete %s: %w", id, o.Key, err)
		}
	}
	return nil
}

// sweep removes what failed or killed backups left: objects in backup
// directories that have no manifest, and pending uploads, once older than
// the grace period. Keys that are not in our layout are never touched.
func sweep(ctx context.Context, b *drivers.Bucket, prefix string, r Retention, res *PruneResult, log *slog.Logger) error {
	objs, err := b.List(ctx, prefixDir(prefix))
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	hasManifest := map[string]bool{}
	for _, o := range objs {
		if id, name, ok := splitBackupKey(prefix, o.Key); ok && name == ManifestObject {
			hasManifest[id] = true
		}
	}
	for _, o := range objs {
		id, _, ok := splitBackupKey(prefix, o.Key)
		if !ok || hasManifest[id] {
			continue
		}
		started, _ := ParseID(id)
		if r.Now.Sub(started) < r.Grace || r.Now.Sub(o.ModTime) < r.Grace {
			continue
		}
		res.Swept = append(res.Swept, o.Key)
		if !r.DryRun {
			if err := b.Delete(ctx, o.Key); err != nil {
				return fmt.Errorf("sweep %s: %w", o.Key, err)
			}
			log.Info("leftover of an unfinished backup removed", "key", o.Key)
		}
	}
	pending, err := b.ListUploads(ctx, prefixDir(prefix))
	if err != nil {
		return fmt.Errorf("sweep: list pending uploads: %w", err)
	}
	for _, p := range pending {
		if r.Now.Sub(p.Initiated) < r.Grace {
			continue
		}
		res.Aborted = append(res.Aborted, p)
		if !r.DryRun {
			if err := b.AbortUpload(ctx, p); err != nil {
				return fmt.Errorf("sweep: abort pending upload of %s: %w", p.Key, err)
			}
			log.Info("stale pending upload aborted", "key", p.Key, "started", p.Initiated)
		}
	}
	return nil
}
