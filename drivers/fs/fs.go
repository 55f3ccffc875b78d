// Package fs is the driver for repos of type fs: a local directory, or a
// volume mounted into the backup pod.
//
// All file access goes through an os.Root opened on the repo's directory, so a
// key can never reach outside it: not with "..", not as an absolute path, and
// not through a symlink that points out. A multipart upload keeps its parts in
// a staging directory inside the root (same filesystem, so the final rename is
// atomic); Complete appends them in order to a temporary file in the staging
// directory, deleting each part as soon as it is appended, fsyncs the file,
// renames it over the key and fsyncs the key's directory. A crash at any point
// leaves either the old object or the new one under the key, never a partial
// file.
//
// Appending and deleting part by part keeps the disk a Complete needs at the
// backup's size plus one part, where copying all parts before deleting any
// needed twice the backup's size (a 12 MB backup failed with 20 MB free).
// The alternative, writing every part straight into one preallocated file at
// its offset, would need each part's offset when it is put; the archiver
// grows its part size as the stream grows, so offsets are known only once
// the earlier parts are. The price of appending is that a Complete that
// failed half-way cannot be repeated from the parts it consumed: the upload
// remembers how far it got and resumes from the partly assembled file.
//
// The driver implements driver.Bucket; application code reaches it through
// *drivers.Bucket, which validates arguments and retries.
//
// Repo URL: file:///absolute/path (the directory is created when missing).
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Type is the repo type this driver registers.
const Type = "fs"

// stagingDir holds pending uploads. It is hidden from List and cannot be used
// as a key.
const stagingDir = ".dbarchive-uploads"

// The limits of a local filesystem are those of the disk; these keep part
// counts in the same range as the cloud drivers so the archiver plans alike.
var limits = drivers.Limits{MaxParts: 100000, MinPartSize: 1, MaxPartSize: 5 << 30}

func init() {
	drivers.Register(drivers.Registration{Type: Type, Scheme: "file", Open: New, FromURL: fromURL})
}

// fromURL reads file:///absolute/path. A plain path works as well (the CLI
// turns "/path" into file:///path).
func fromURL(u *url.URL, cfg *drivers.Config) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", errors.New("file:// URLs take no host (file:///absolute/path)")
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return "", errors.New("file:// needs an absolute path")
	}
	cfg.Path = filepath.Clean(u.Path)
	// A CLI user names a directory to back up into; making it is expected.
	cfg.CreateBucket = true
	return "", nil
}

// Bucket is an fs repo.
type Bucket struct {
	root *os.Root
	dir  string
}

// New opens the directory cfg.Path. With cfg.CreateBucket the directory is
// created when missing; otherwise a missing directory is a config error, so a
// mistyped mount path never turns into writes to the container's own disk.
func New(_ context.Context, cfg drivers.Config) (driver.Bucket, error) {
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

// errRemoved is the cause of every call on a repo whose directory is gone.
var errRemoved = errors.New("the repo directory was removed")

// checkRoot makes the calls that would otherwise succeed on a removed
// directory (an empty listing, a delete of nothing) report it as NotFound,
// like a missing bucket, instead of looking like an empty repo.
func (b *Bucket) checkRoot(key string) error {
	if removed(b.root) {
		return drivers.Errorf(drivers.NotFound, "", key, errRemoved)
	}
	return nil
}

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
		return nil, driver.ErrInvalidRange
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
	if err := b.checkRoot(prefix); err != nil {
		return nil, err
	}
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
	if err := b.checkRoot(key); err != nil {
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

func (b *Bucket) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
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
	if err := b.checkRoot(prefix); err != nil {
		return nil, err
	}
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
	if err := b.checkRoot(p.Key); err != nil {
		return err
	}
	return classify("abort upload", p.Key, b.root.RemoveAll(path.Join(stagingDir, p.ID)))
}

type upload struct {
	b   *Bucket
	key string
	dir string

	// How far an earlier Complete got: parts 1..consumed are in the
	// assembled file, whose first assembledSize bytes are theirs.
	mu            sync.Mutex
	consumed      int
	assembledSize int64
}

func (u *upload) Key() string { return u.key }

func partName(n int) string { return fmt.Sprintf("part-%06d", n) }

func (u *upload) PutPart(ctx context.Context, n int, data []byte) error {
	if err := ctx.Err(); err != nil {
		return classify("", u.key, err)
	}
	// Write beside the final name and rename, so a re-put replaces the part
	// whole and a concurrent reader never sees half of one.
	final := path.Join(u.dir, partName(n))
	tmp := final + "." + newID() + ".tmp"
	if err := u.b.root.WriteFile(tmp, data, 0o640); err != nil {
		_ = u.b.root.Remove(tmp)
		return classify("", u.key, err)
	}
	if err := u.b.root.Rename(tmp, final); err != nil {
		_ = u.b.root.Remove(tmp)
		return classify("", u.key, err)
	}
	return nil
}

// Test hooks: afterAppend runs after each part is appended and deleted (to
// measure the disk in use), syncDir syncs the key's directory.
var (
	afterAppend = func(n int) {}
	syncDir     = func(d *os.File) error { return d.Sync() }
)

func (u *upload) Complete(ctx context.Context, parts int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for n := u.consumed + 1; n <= parts; n++ {
		if _, err := u.b.root.Stat(path.Join(u.dir, partName(n))); err != nil {
			return drivers.Errorf(drivers.Permanent, "", u.key, fmt.Errorf("part %d was not put", n))
		}
	}
	assembled := path.Join(u.dir, "assembled")
	out, err := u.b.root.OpenFile(assembled, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return classify("", u.key, err)
	}
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	// Drop whatever a failed earlier append left after the last whole part.
	if err := out.Truncate(u.assembledSize); err != nil {
		return classify("", u.key, err)
	}
	if _, err := out.Seek(u.assembledSize, io.SeekStart); err != nil {
		return classify("", u.key, err)
	}
	for n := u.consumed + 1; n <= parts; n++ {
		if err := ctx.Err(); err != nil {
			return classify("", u.key, err)
		}
		size, err := u.appendPart(out, n)
		if err != nil {
			return classify("", u.key, err)
		}
		// The part is in the assembled file now; deleting it here is what
		// keeps the disk in use at one copy of the backup plus one part.
		if err := u.b.root.Remove(path.Join(u.dir, partName(n))); err != nil {
			return classify("", u.key, err)
		}
		u.consumed, u.assembledSize = n, u.assembledSize+size
		afterAppend(n)
	}
	if err := out.Sync(); err != nil {
		return classify("", u.key, err)
	}
	err = out.Close()
	out = nil
	if err != nil {
		return classify("", u.key, err)
	}
	dir := path.Dir(u.key)
	if err := u.b.root.MkdirAll(dir, 0o750); err != nil {
		return classify("", u.key, err)
	}
	if err := u.b.root.Rename(assembled, u.key); err != nil {
		return classify("", u.key, err)
	}
	// The rename is durable only once its directory is synced. If that
	// fails, the object may vanish in a crash: report the failure and take
	// the object back, so that nothing claims to be stored that may not be.
	if err := u.syncDir(dir); err != nil {
		_ = u.b.root.Remove(u.key)
		return classify("", u.key, fmt.Errorf("sync directory of the object: %w", err))
	}
	_ = u.b.root.RemoveAll(u.dir)
	return nil
}

func (u *upload) syncDir(dir string) error {
	d, err := u.b.root.Open(dir)
	if err != nil {
		return err
	}
	err = syncDir(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// appendPart copies part n to the end of out and reports its size. On Linux
// io.Copy between two files uses copy_file_range: the kernel moves the bytes.
func (u *upload) appendPart(out *os.File, n int) (int64, error) {
	in, err := u.b.root.Open(path.Join(u.dir, partName(n)))
	if err != nil {
		return 0, err
	}
	defer in.Close()
	return io.Copy(out, in)
}

func (u *upload) Abort(ctx context.Context) error {
	return classify("", u.key, u.b.root.RemoveAll(u.dir))
}
