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

// ErrAmbiguousSet is returned for "latest" when the repo holds backups of
// more than one set and the caller named none (or named too little).
var ErrAmbiguousSet = errors.New("the backups are of more than one set")

// UnreadableError is a backup whose manifest exists but cannot be read or
// does not validate.
type UnreadableError struct {
	ID  string
	Err error
}

func (e *UnreadableError) Error() string { return e.Err.Error() }
func (e *UnreadableError) Unwrap() error { return e.Err }

// Set is what a backup is a backup of: source type, database and the name
// given to the backup. Retention and "latest" work within one set.
type Set struct {
	Type     string
	Database string
	Name     string
}

// Set returns the set backup m belongs to.
func (m *Manifest) Set() Set {
	return Set{Type: m.Source.Type, Database: m.Source.Database, Name: m.Name}
}

// String shows a set as type/database, with name=NAME when it has a name.
func (s Set) String() string {
	out := s.Type
	if s.Database != "" {
		out += "/" + s.Database
	}
	if s.Name != "" {
		out += " name=" + s.Name
	}
	return out
}

// SetFilter selects backup sets. Empty fields match any value, so the zero
// filter matches every set.
type SetFilter struct {
	Type     string
	Database string
	// Name is compared only when HasName is set; an empty Name then
	// selects the backups made without a name.
	Name    string
	HasName bool
}

// Match reports whether s is selected.
func (f SetFilter) Match(s Set) bool {
	return (f.Type == "" || f.Type == s.Type) &&
		(f.Database == "" || f.Database == s.Database) &&
		(!f.HasName || f.Name == s.Name)
}

// IsZero reports whether the filter names nothing.
func (f SetFilter) IsZero() bool { return f == SetFilter{} }

func (f SetFilter) String() string {
	var parts []string
	if f.Type != "" {
		parts = append(parts, "type "+f.Type)
	}
	if f.Database != "" {
		parts = append(parts, "database "+f.Database)
	}
	if f.HasName {
		parts = append(parts, fmt.Sprintf("name %q", f.Name))
	}
	return strings.Join(parts, ", ")
}

// List returns the backups under prefix, oldest first: every directory whose
// manifest reads and validates. Directories without a manifest are not
// backups. A manifest that cannot be read is reported in problems, as an
// *UnreadableError, and skipped, so one damaged backup does not hide the
// others from a listing (Resolve does not skip it).
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
			problems = append(problems, &UnreadableError{ID: ids[i], Err: errs[i]})
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

// Resolve finds one backup by selector: an id names it directly, and it
// must be of a set f matches. "latest" (or "") is the newest backup of the
// one set f selects; before:<RFC 3339 time> is the newest backup of that set
// whose recorded end time is at or before the time. When the backups are of
// several sets and f does not narrow them to one, the error wraps
// ErrAmbiguousSet and lists the sets. Resolve never skips a damaged backup:
// when a manifest that could be the answer (newer than the answer, and for
// before: started at or before the time) cannot be read, it fails naming it.
func Resolve(ctx context.Context, b *drivers.Bucket, prefix, sel string, f SetFilter) (*Manifest, error) {
	s, err := parseSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBackup, err)
	}
	if s.id != "" {
		m, err := ReadManifest(ctx, b, prefix, s.id)
		if err == nil && !f.Match(m.Set()) {
			return nil, fmt.Errorf("backup %s is of set %s, not of the one asked (%s)", s.id, m.Set(), f)
		}
		return m, err
	}
	backups, problems, err := List(ctx, b, prefix)
	if err != nil {
		return nil, err
	}
	var sets []Set
	var chosen *Manifest
	for _, m := range backups {
		if !f.Match(m.Set()) {
			continue
		}
		if !slices.Contains(sets, m.Set()) {
			sets = append(sets, m.Set())
		}
		if s.latest() || !m.EndTime.After(s.before) {
			chosen = m
		}
	}
	of := ""
	if !f.IsZero() {
		of = " of " + f.String()
	}
	if len(sets) > 1 {
		names := make([]string, len(sets))
		for i, s := range sets {
			names[i] = s.String()
		}
		return nil, fmt.Errorf("%s%s: %w (%s); name one", s, of, ErrAmbiguousSet, strings.Join(names, "; "))
	}
	var unreadable []error
	for _, p := range problems {
		var ue *UnreadableError
		if !errors.As(p, &ue) || (chosen != nil && ue.ID <= chosen.ID) {
			continue
		}
		if started, err := ParseID(ue.ID); err == nil && !s.latest() && started.After(s.before) {
			continue // started after the time, so it cannot have finished before it
		}
		unreadable = append(unreadable, p)
	}
	if len(unreadable) > 0 {
		chosenID := "no readable backup"
		if chosen != nil {
			chosenID = "the newest readable one is " + chosen.ID
		}
		return nil, fmt.Errorf("%s%s: a newer backup's manifest cannot be read, so the answer is unknown (%s); give a backup id to use another: %w",
			s, of, chosenID, errors.Join(unreadable...))
	}
	if chosen == nil {
		if !s.latest() {
			return nil, fmt.Errorf("%w%s finished at or before %s under %q", ErrNoBackup, of, s.before.Format(time.RFC3339), prefixDir(prefix))
		}
		return nil, fmt.Errorf("%w: the repo holds no backup%s under %q", ErrNoBackup, of, prefixDir(prefix))
	}
	return chosen, nil
}

// Retention says which backups prune keeps. Rules apply within each set
// (see Set) and count only complete backups: a backup is kept when any rule
// keeps it, and the newest complete backup of each set is always kept.
type Retention struct {
	// KeepLast keeps the newest N complete backups of each set.
	KeepLast int
	// KeepWithin keeps complete backups that finished within this long
	// before Now.
	KeepWithin time.Duration
	// Grace protects leftovers of backups that never got a manifest, and
	// pending uploads, younger than this: they may belong to a backup that
	// is still running. Incomplete backups younger than this are left alone
	// too. Default 24h.
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
	// Kept are the complete backups kept, oldest first.
	Kept []*Manifest
	// Deleted are the backups deleted, oldest first: complete ones no rule
	// keeps, and incomplete ones older than the grace period.
	Deleted []*Manifest
	// Incomplete are the listed backups that cannot be restored because an
	// object their manifest names is missing or has another size: they
	// count toward no rule. Those older than the grace period are deleted.
	Incomplete []Incomplete
	// Swept are keys of objects that belonged to no finished backup.
	Swept []string
	// Aborted are pending uploads that were aborted.
	Aborted []drivers.PendingUpload
}

// Incomplete is a listed backup that cannot be restored, and why.
type Incomplete struct {
	Manifest *Manifest
	Reason   string
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
	objs, err := b.List(ctx, prefixDir(prefix))
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefixDir(prefix), err)
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	res := &PruneResult{}
	var drop []*Manifest
	complete := map[Set][]*Manifest{} // oldest first, like backups
	for _, m := range backups {
		if why := incomplete(prefix, m, sizes); why != "" {
			res.Incomplete = append(res.Incomplete, Incomplete{Manifest: m, Reason: why})
			old := r.Now.Sub(m.EndTime) >= r.Grace
			log.Warn("incomplete backup: it cannot be restored and counts toward no retention rule", "backup", m.ID, "set", m.Set().String(), "reason", why, "removed", old && !r.DryRun)
			if old {
				drop = append(drop, m)
			}
			continue
		}
		complete[m.Set()] = append(complete[m.Set()], m)
	}
	for _, set := range complete {
		for i, m := range set {
			keep := i == len(set)-1 ||
				(r.KeepLast > 0 && i >= len(set)-r.KeepLast) ||
				(r.KeepWithin > 0 && r.Now.Sub(m.EndTime) <= r.KeepWithin)
			if keep {
				res.Kept = append(res.Kept, m)
			} else {
				drop = append(drop, m)
			}
		}
	}
	byID := func(a, b *Manifest) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(res.Kept, byID)
	slices.SortFunc(drop, byID)
	for _, m := range drop {
		res.Deleted = append(res.Deleted, m)
		if !r.DryRun {
			if err := deleteBackup(ctx, b, prefix, m.ID); err != nil {
				return res, err
			}
			log.Info("backup pruned", "backup", m.ID, "set", m.Set().String())
		}
	}
	if err := sweep(ctx, b, prefix, r, res, log); err != nil {
		return res, err
	}
	return res, nil
}

// incomplete says why backup m cannot be restored, judged by the sizes of
// the objects in the repo, or returns "" when nothing it needs is missing.
func incomplete(prefix string, m *Manifest, sizes map[string]int64) string {
	size, ok := sizes[objectKey(prefix, m.ID, m.DataObject)]
	switch {
	case !ok:
		return fmt.Sprintf("data object %s is missing", m.DataObject)
	case size != m.StoredSize:
		return fmt.Sprintf("data object %s has %d bytes, the manifest says %d", m.DataObject, size, m.StoredSize)
	}
	if m.PartsObject != "" {
		if _, ok := sizes[objectKey(prefix, m.ID, m.PartsObject)]; !ok {
			return fmt.Sprintf("parts object %s is missing", m.PartsObject)
		}
	}
	// A missing table list is not here: the backup still restores, and
	// prune must not delete it for that. Verify reports it.
	return ""
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
