package emulators

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
	h = missingBucket(backend, h)
	if wrap != nil {
		h = wrap(h)
	}
	// httptest listens on 127.0.0.1:0 and speaks plain HTTP, which gofakes3
	// and the SDKs' checksum handling are happiest with.
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, bucket
}

// missingBucket answers 404 NoSuchBucket for every request about a bucket
// that does not exist, except the one that creates it, as S3 does. gofakes3
// answers some of them (AbortMultipartUpload) NoSuchUpload instead; the
// difference is handled here, not in the drivers.
func missingBucket(backend *s3mem.Backend, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		creating := r.Method == http.MethodPut && key == "" && r.URL.RawQuery == ""
		if name != "" && !creating {
			if ok, err := backend.BucketExists(name); err == nil && !ok {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusNotFound)
				_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>%s</BucketName></Error>`, name)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// S3 starts gofakes3 and returns the config of an s3 repo on it: path-style
// addressing, a fresh bucket, fake static keys. gofakes3 checks no
// signature, so the emulator refuses (403 AccessDenied) every request not
// signed by the config's access key id, as S3 would refuse a wrong one.
// Callers set ListPageSize.
func S3(t testing.TB) drivers.Config {
	t.Helper()
	return s3Config(startS3(t, requireAccessKey))
}

// requireAccessKey refuses requests not signed with AWS Signature V4 by the
// emulator's access key id.
func requireAccessKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+fakeAccessKeyID+"/") {
			denyS3(w, r, "the request is not signed by the expected access key id")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// denyS3 answers as S3 does to credentials it refuses.
func denyS3(w http.ResponseWriter, r *http.Request, reason string) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusForbidden)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>%s</Message><RequestId>emulator</RequestId></Error>`, reason)
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
