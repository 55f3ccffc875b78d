package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
	_ "github.com/dbarchive/dbarchive/drivers/s3"
)

// openWithPageSize opens cfg with the suite's page size and closes it with t.
func openWithPageSize(t testing.TB, cfg drivers.Config) drivers.Bucket {
	t.Helper()
	cfg.ListPageSize = conformance.ListPageSize
	b, err := drivers.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s repo: %v", cfg.Type, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestS3(t *testing.T) {
	cfg := emulators.S3(t)
	conformance.Run(t, func(t *testing.T) drivers.Bucket { return openWithPageSize(t, cfg) })
}

// TestS3CreateBucket checks that CreateBucket makes a missing bucket and
// accepts one that exists.
func TestS3CreateBucket(t *testing.T) {
	cfg := emulators.S3(t)
	cfg.Bucket += "-created"
	if _, err := drivers.Open(context.Background(), cfg); err != nil {
		t.Fatalf("open without CreateBucket: %v", err) // opening sends nothing
	}
	cfg.CreateBucket = true
	b := openWithPageSize(t, cfg)
	if _, err := b.List(context.Background(), ""); err != nil {
		t.Fatalf("List in the created bucket: %v", err)
	}
	openWithPageSize(t, cfg) // the bucket exists now: no error
}

// TestS3Faults checks that what the fault injector produces, a 500 and a
// connection reset during a part upload, reach the caller as Transient, and
// that the upload can go on after them.
func TestS3Faults(t *testing.T) {
	faults := &emulators.Faults{}
	b := openWithPageSize(t, emulators.S3WithFaults(t, faults))
	ctx := context.Background()
	key := "faults/object"
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	part := bytes.Repeat([]byte("x"), conformance.PartSize)

	faults.Fail500(1)
	faults.Reset(1)
	for i, want := range []string{"500", "reset"} {
		err := u.PutPart(ctx, 1, part)
		if err == nil {
			t.Fatalf("PutPart with a %s injected succeeded", want)
		}
		if drivers.CodeOf(err) != drivers.Transient || !errors.Is(err, drivers.ErrTransient) {
			t.Errorf("fault %d (%s): PutPart = %v (code %v), want Transient", i+1, want, err, drivers.CodeOf(err))
		}
	}
	if n500, resets := faults.Injected(); n500 != 1 || resets != 1 {
		t.Fatalf("Injected() = %d, %d; want 1, 1", n500, resets)
	}
	// The archiver's retry: the same part again, now through.
	if err := u.PutPart(ctx, 1, part); err != nil {
		t.Fatalf("PutPart after the faults: %v", err)
	}
	if err := u.Complete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	info, err := b.Stat(ctx, key)
	if err != nil || info.Size != int64(len(part)) {
		t.Fatalf("Stat = %+v, %v; want %d bytes", info, err, len(part))
	}
}

// TestS3WrongBucketIsNotFound checks the class of a missing bucket, which a
// mistyped repo produces on the first request.
func TestS3WrongBucketIsNotFound(t *testing.T) {
	cfg := emulators.S3(t)
	cfg.Bucket = fmt.Sprintf("%s-missing", cfg.Bucket)
	b := openWithPageSize(t, cfg)
	_, err := b.List(context.Background(), "")
	if drivers.CodeOf(err) != drivers.NotFound {
		t.Fatalf("List in a missing bucket = %v (code %v), want NotFound", err, drivers.CodeOf(err))
	}
}
