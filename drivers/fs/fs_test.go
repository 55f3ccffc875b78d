package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/fs"
)

func open(t *testing.T, dir string) *drivers.Bucket {
	t.Helper()
	cfg := drivers.Config{Name: "local", Type: "fs", Path: dir}
	d, err := fs.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := drivers.NewBucket(d, cfg)
	t.Cleanup(func() { b.Close() })
	return b
}

func put(ctx context.Context, b *drivers.Bucket, key string, data []byte) error {
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		return err
	}
	if err := u.PutPart(ctx, 1, data); err != nil {
		u.Abort(ctx)
		return err
	}
	return u.Complete(ctx, 1)
}

func TestKeysCannotEscapeTheRoot(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "repo")
	outside := filepath.Join(parent, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the repo that points out of it.
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	b := open(t, root)
	for _, key := range []string{"../outside/secret", "/etc/passwd", "a/../../outside/secret", "link/secret", "link/new", `a\..\b`, ".dbarchive-uploads/x"} {
		if err := put(ctx, b, key, []byte("x")); err == nil {
			t.Errorf("upload to %q succeeded", key)
		}
		if r, err := b.NewRangeReader(ctx, key, 0, -1); err == nil {
			r.Close()
			t.Errorf("read of %q succeeded", key)
		}
		if err := b.Delete(ctx, key); err == nil && key == "link/secret" {
			if _, serr := os.Stat(filepath.Join(outside, "secret")); serr != nil {
				t.Errorf("delete of %q removed a file outside the repo", key)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Fatal("a file was written outside the repo")
	}
	objs, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.Key, "secret") {
			t.Fatalf("List shows %q from outside the repo", o.Key)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]drivers.Config{
		"no path":       {Name: "local", Type: "fs"},
		"relative path": {Name: "local", Type: "fs", Path: "backups"},
		"missing dir":   {Name: "local", Type: "fs", Path: filepath.Join(t.TempDir(), "nope")},
		"not a dir":     {Name: "local", Type: "fs", Path: file},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := fs.New(context.Background(), cfg)
			var ce *drivers.ConfigError
			if !errors.As(err, &ce) || ce.Repo != "local" || ce.Field != "path" {
				t.Fatalf("New = %v, want a ConfigError on field path of repo local", err)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "new", "repo")
	if _, err := fs.New(context.Background(), drivers.Config{Name: "local", Type: "fs", Path: dir, CreateBucket: true}); err != nil {
		t.Fatalf("New with CreateBucket: %v", err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("CreateBucket did not create %s", dir)
	}
}

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b := open(t, root)
	if err := put(ctx, b, "a/b/c/object", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, b, "a/keep", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a/b/c/object"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directories left after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "keep")); err != nil {
		t.Errorf("delete climbed into a directory that was not empty: %v", err)
	}
}
