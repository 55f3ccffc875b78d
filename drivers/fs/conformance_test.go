//go:build mutation

package fs_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/drivers"
)

// TestConformance runs the storage conformance suite on the fs driver as a
// test of this package, for make mutation only (build tag mutation): mutation
// testing counts a package's own tests, and the suite is most of what tests
// this driver. make test and make conformance run the same suite on fs as
// conformance.TestFS, without the race detector this package runs under in
// make test, where the suite would take several times as long.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Config: func(t *testing.T) drivers.Config {
			return drivers.Config{Name: "fs-conformance", Type: "fs", Path: t.TempDir(), ListPageSize: conformance.ListPageSize}
		},
		// An fs repo cannot be opened on a missing directory (a config
		// error, so a mistyped mount path never fills the pod's own disk);
		// the directory vanishing under an open repo (a volume unmounted,
		// the directory removed) is what "missing bucket" means here.
		Missing: func(t *testing.T, cfg drivers.Config) (drivers.Config, func()) {
			return cfg, func() {
				if err := os.RemoveAll(cfg.Path); err != nil {
					t.Fatal(err)
				}
			}
		},
		Witness: fileWitness,
		NotApplicable: map[string]string{
			"BadCredentials":          "an fs repo has no credentials; file permissions are the operating system's, and the tests run as root, which bypasses them",
			"ResetMidRangedRead":      "there is no connection to reset; the portable layer's resumption of a broken body is tested in package drivers (TestReaderResumesAfterReset)",
			"Unavailable503IsRetried": "there is no service to answer 503; retries by class are tested in package drivers (TestEveryCallIsRetried)",
			"EndpointStopsAnswering":  "there is no endpoint; a hung local disk blocks in the kernel, where no timeout of ours reaches (the body watchdog is tested in package drivers, TestReaderIdleWatchdog)",
		},
	})
}

// fileWitness is the suite's second client for an fs repo: gocloud.dev's
// fileblob on the repo directory. The fs driver writes plain files and no
// attribute sidecars; fileblob reads such files with default attributes.
func fileWitness(t *testing.T, cfg drivers.Config) conformance.Witness {
	b, err := fileblob.OpenBucket(cfg.Path, nil)
	if err != nil {
		t.Fatalf("open the second client: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return blobWitness{b}
}

// blobWitness adapts a *blob.Bucket to conformance.Witness.
type blobWitness struct{ b *blob.Bucket }

func (w blobWitness) ReadAll(ctx context.Context, key string) ([]byte, error) {
	return w.b.ReadAll(ctx, key)
}

func (w blobWitness) Size(ctx context.Context, key string) (int64, error) {
	a, err := w.b.Attributes(ctx, key)
	if err != nil {
		return 0, err
	}
	return a.Size, nil
}

func (w blobWitness) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	it := w.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, obj.Key)
	}
}
