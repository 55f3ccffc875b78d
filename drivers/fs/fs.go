// Package fs is the driver for repos of type fs: a local directory, or a
// volume mounted into the backup pod.
//
// All file access goes through an os.Root opened on the repo's directory, so a
// key can never reach outside it: not with "..", not as an absolute path, and
// not through a symlink that points out. A multipart upload keeps its parts in
// a staging directory inside the root (same filesystem, so the final rename is
// atomic); Complete assembles them into a temporary file, fsyncs it, renames it
// over the key and fsyncs the directory. A crash at any point leaves either the
// old object or the new one under the key, never a partial file.
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/dbarchive/dbarchive/drivers"
)

// Type is the repo type this driver registers.
const Type = "fs"

// stagingDir holds pending uploads. It is hidden from List and cannot be used
// as a key.
const stagingDir = ".dbarchive-uploads"

// The limits of a local filesystem are those of the disk; these keep part
// counts in the same range as the cloud drivers so the archiver plans alike.
var limits = drivers.Limits{MaxParts: 100000, MinPartSize: 1, MaxPartSize: 5 << 30}

func init() { drivers.Register(Type, New) }

// Bucket is an fs repo.
type Bucket struct {
	root *os.Root
	dir  string
}

// New opens the directory cfg.Path. With cfg.CreateBucket the directory is
// created when missing; otherwise a missing directory is a config error, so a
// mistyped mount path never turns into writes to the container's own disk.
func New(_ context.Context, cfg drivers.Config) (drivers.Bucket, error) {
	if err := cfg.Require("path", cfg.Path); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(cfg.Path) {
		return nil, cfg.Invalid("path", "must be an absolute directory path")
	}
	if cfg.CreateBucket {
		if err := os.MkdirAll(cfg.Path, 0o750); err != nil {
			return nil, cfg.Invalid("path", "cannot create directory: %v", errors.Unwrap(err))
		}
	}
	st, err := os.Stat(cfg.Path)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return nil, cfg.Invalid("path", "directory %s does not exist", cfg.Path)
	case err != nil:
		return nil, cfg.Invalid("path", "cannot use %s: %v", cfg.Path, errors.Unwrap(err))
	case !st.IsDir():
		return nil, cfg.Invalid("path", "%s is not a directory", cfg.Path)
	}
	root, err := os.OpenRoot(cfg.Path)
	if err != nil {
		return nil, cfg.Invalid("path", "cannot open %s: %v", cfg.Path, errors.Unwrap(err))
	}
	return &Bucket{root: root, dir: cfg.Path}, nil
}

func (b *Bucket) Limits() drivers.Limits { return limits }

func (b *Bucket) Close() error { return b.root.Close() }

// checkKey rejects keys that are not plain relative paths inside the root, or
// that would touch the staging area. Symlinks are handled by os.Root itself.
func checkKey(op, key string) error {
	switch {
	case key == "":
		return drivers.Errorf(drivers.Permanent, op, key, errors.New("empty key"))
	case strings.Contains(key, `\`), strings.HasSuffix(key, "/"),
		!filepath.IsLocal(key), path.Clean(key) != key:
		return drivers.Errorf(drivers.Permanent, op, key, errors.New("key must be a clean relative path inside the repo"))
	case key == stagingDir || strings.HasPrefix(key, stagingDir+"/"):
		return drivers.Errorf(drivers.Permanent, op, key, errors.New("key is reserved for pending uploads"))
	}
	return nil
}

// classify maps a filesystem error to a drivers error class.
func classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	code := drivers.Permanent
	switch {
	case errors.Is(err, iofs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		code = drivers.NotFound
	case errors.Is(err, iofs.ErrPermission):
		code = drivers.PermissionDenied
	case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN):
		code = drivers.Transient
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = drivers.ClassifyNetwork(err)
	}
	return drivers.Errorf(code, op, key, err)
}

func (b *Bucket) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	if err := checkKey("stat", key); err != nil {
		return drivers.ObjectInfo{}, err
	}
	st, err := b.root.Stat(key)
	if err != nil {
		return drivers.ObjectInfo{}, classify("stat", key, err)
	}
	if !st.Mode().IsRegular() {
		return drivers.ObjectInfo{}, drivers.Errorf(drivers.NotFound, "stat", key, errors.New("not a file"))
	}
	return drivers.ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey("read", key); err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, drivers.Errorf(drivers.Permanent, "read", key, fmt.Errorf("invalid range offset %d length %d", offset, length))
	}
	f, err := b.root.Open(key)
	if err != nil {
		return nil, classify("read", key, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = iofs.ErrNotExist
	}
	if err != nil {
		f.Close()
		return nil, classify("read", key, err)
	}
	if offset > st.Size() {
		f.Close()
		return nil, drivers.Errorf(drivers.Permanent, "read", key, fmt.Errorf("offset %d is past the end (size %d)", offset, st.Size()))
	}
	n := st.Size() - offset
	if length >= 0 && length < n {
		n = length
	}
	return readCloser{Reader: io.NewSectionReader(f, offset, n), Closer: f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (b *Bucket) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	// Walk only the deepest directory the prefix names in full.
	start := "."
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = path.Clean(prefix[:i])
		if !filepath.IsLocal(start) {
			return nil, drivers.Errorf(drivers.Permanent, "list", prefix, errors.New("prefix must stay inside the repo"))
		}
	}
	var out []drivers.ObjectInfo
	err := iofs.WalkDir(b.root.FS(), start, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, iofs.ErrNotExist) {
				return iofs.SkipAll
			}
			return err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if d.IsDir() {
			if p == stagingDir {
				return iofs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) { // deleted while we walked
				return nil
			}
			return err
		}
		out = append(out, drivers.ObjectInfo{Key: p, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, classify("list", prefix, err)
	}
	slices.SortFunc(out, func(a, b drivers.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	if err := b.root.Remove(key); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return classify("delete", key, err)
	}
	// Drop directories the delete left empty, so pruned backups leave no
	// litter; a directory that is not empty stops the climb.
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		if b.root.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func newID() string {
	var buf [12]byte
	_, _ = rand.Read(buf[:])
	return hex.EncodeToString(buf[:])
}

func (b *Bucket) NewUpload(ctx context.Context, key string) (drivers.Upload, error) {
	if err := checkKey("begin upload", key); err != nil {
		return nil, err
	}
	id := newID()
	dir := path.Join(stagingDir, id)
	if err := b.root.MkdirAll(dir, 0o750); err != nil {
		return nil, classify("begin upload", key, err)
	}
	// The key is recorded so ListUploads can report what a stale upload was for.
	if err := b.root.WriteFile(path.Join(dir, "key"), []byte(key), 0o640); err != nil {
		_ = b.root.RemoveAll(dir)
		return nil, classify("begin upload", key, err)
	}
	return &upload{b: b, key: key, dir: dir}, nil
}

func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]drivers.PendingUpload, error) {
	entries, err := iofs.ReadDir(b.root.FS(), stagingDir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("list uploads", prefix, err)
	}
	var out []drivers.PendingUpload
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		keyFile := path.Join(stagingDir, e.Name(), "key")
		key, err := b.root.ReadFile(keyFile)
		if err != nil {
			continue // half-created or being removed
		}
		st, err := b.root.Stat(keyFile)
		if err != nil || !strings.HasPrefix(string(key), prefix) {
			continue
		}
		out = append(out, drivers.PendingUpload{Key: string(key), ID: e.Name(), Initiated: st.ModTime()})
	}
	return out, nil
}

func (b *Bucket) AbortUpload(ctx context.Context, p drivers.PendingUpload) error {
	if p.ID == "" || strings.ContainsAny(p.ID, `/\.`) {
		return drivers.Errorf(drivers.Permanent, "abort upload", p.Key, fmt.Errorf("invalid upload id %q", p.ID))
	}
	return classify("abort upload", p.Key, b.root.RemoveAll(path.Join(stagingDir, p.ID)))
}

type upload struct {
	b   *Bucket
	key string
	dir string
}

func (u *upload) Key() string { return u.key }

func partName(n int) string { return fmt.Sprintf("part-%06d", n) }

func (u *upload) PutPart(ctx context.Context, n int, data []byte) error {
	op := fmt.Sprintf("put part %d", n)
	if n < 1 || n > limits.MaxParts {
		return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part number must be 1..%d", limits.MaxParts))
	}
	if err := ctx.Err(); err != nil {
		return classify(op, u.key, err)
	}
	// Write beside the final name and rename, so a re-put replaces the part
	// whole and a concurrent reader never sees half of one.
	final := path.Join(u.dir, partName(n))
	tmp := final + "." + newID() + ".tmp"
	if err := u.b.root.WriteFile(tmp, data, 0o640); err != nil {
		_ = u.b.root.Remove(tmp)
		return classify(op, u.key, err)
	}
	if err := u.b.root.Rename(tmp, final); err != nil {
		_ = u.b.root.Remove(tmp)
		return classify(op, u.key, err)
	}
	return nil
}

func (u *upload) Complete(ctx context.Context, parts int) (err error) {
	const op = "complete upload"
	if parts < 0 || parts > limits.MaxParts {
		return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part count must be 0..%d", limits.MaxParts))
	}
	for n := 1; n <= parts; n++ {
		if _, err := u.b.root.Stat(path.Join(u.dir, partName(n))); err != nil {
			return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part %d was not put", n))
		}
	}
	assembled := path.Join(u.dir, "assembled")
	out, err := u.b.root.OpenFile(assembled, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return classify(op, u.key, err)
	}
	defer func() {
		if out != nil {
			out.Close()
		}
		if err != nil {
			_ = u.b.root.Remove(assembled)
		}
	}()
	for n := 1; n <= parts; n++ {
		if err := ctx.Err(); err != nil {
			return classify(op, u.key, err)
		}
		if err := u.appendPart(out, n); err != nil {
			return classify(op, u.key, err)
		}
	}
	if err := out.Sync(); err != nil {
		return classify(op, u.key, err)
	}
	if err := out.Close(); err != nil {
		out = nil
		return classify(op, u.key, err)
	}
	out = nil
	dir := path.Dir(u.key)
	if err := u.b.root.MkdirAll(dir, 0o750); err != nil {
		return classify(op, u.key, err)
	}
	if err := u.b.root.Rename(assembled, u.key); err != nil {
		return classify(op, u.key, err)
	}
	// The rename is durable only once its directory is synced.
	if d, err := u.b.root.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	_ = u.b.root.RemoveAll(u.dir)
	return nil
}

func (u *upload) appendPart(out *os.File, n int) error {
	in, err := u.b.root.Open(path.Join(u.dir, partName(n)))
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = io.Copy(out, in)
	return err
}

func (u *upload) Abort(ctx context.Context) error {
	return classify("abort upload", u.key, u.b.root.RemoveAll(u.dir))
}
