package emulators

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/dbarchive/dbarchive/drivers"
)

// Fake credentials the S3 emulator's configs carry. gofakes3 does not check
// signatures; the ibmcos harness checks the access key id itself.
const (
	fakeAccessKeyID     = "AKIAEMULATOR00000000"
	fakeSecretAccessKey = "emulator-secret-access-key-not-a-real-one"
)

// bucketSeq keeps bucket names apart when one test starts several emulators.
var bucketSeq atomic.Int64

// startS3 serves a fresh in-memory gofakes3 with one bucket on a loopback
// port, behind wrap when it is not nil, and returns the server's URL and the
// bucket's name. The server shuts down with t.Cleanup.
func startS3(t testing.TB, wrap func(http.Handler) http.Handler) (url, bucket string) {
	t.Helper()
	backend := s3mem.New()
	bucket = fmt.Sprintf("dbarchive-test-%d", bucketSeq.Add(1))
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatalf("gofakes3: create bucket %s: %v", bucket, err)
	}
	// Buckets must exist before use, as on a real store, so a driver that
	// forgets cfg.Bucket fails here and not in production.
	var h http.Handler = gofakes3.New(backend, gofakes3.WithAutoBucket(false)).Server()
	if wrap != nil {
		h = wrap(h)
	}
	// httptest listens on 127.0.0.1:0 and speaks plain HTTP, which gofakes3
	// and the SDKs' checksum handling are happiest with.
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, bucket
}

// S3 starts gofakes3 and returns the config of an s3 repo on it: path-style
// addressing, a fresh bucket, fake static keys. Callers set ListPageSize.
func S3(t testing.TB) drivers.Config {
	t.Helper()
	return s3Config(startS3(t, nil))
}

// S3WithFaults is S3 with f injecting failures into part uploads.
func S3WithFaults(t testing.TB, f *Faults) drivers.Config {
	t.Helper()
	return s3Config(startS3(t, f.wrap))
}

func s3Config(url, bucket string) drivers.Config {
	return drivers.Config{
		Name:      "s3-emulator",
		Type:      "s3",
		Endpoint:  url,
		PathStyle: true,
		Region:    "us-east-1",
		Bucket:    bucket,
		Secrets: drivers.SecretsFromStrings(map[string]string{
			"AccessKeyId":     fakeAccessKeyID,
			"SecretAccessKey": fakeSecretAccessKey,
		}),
	}
}
