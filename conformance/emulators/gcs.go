package emulators

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/dbarchive/dbarchive/drivers"
)

var gcsBuckets atomic.Int64

// GCS starts fake-gcs-server in this process on a loopback port, over plain
// HTTP, with one fresh bucket, and returns a gcs repo config for it. The
// server stops when the test ends.
//
// Where fake-gcs-server differs from GCS, the difference is handled here and
// not in the driver:
//   - The SDK reads objects through the XML API at http://<endpoint host>/<bucket>/<key>.
//     fake-gcs-server serves that path only for its "public host"; any other
//     Host header is taken as a bucket name (virtual-hosted style). Setting
//     the public host to 127.0.0.1 (matched without the port) makes the
//     SDK's path-style reads work.
//   - A compose naming a missing source fails with 500, where GCS answers
//     404. The driver checks for missing parts before it composes, so the
//     suite never sees it.
func GCS(t testing.TB) drivers.Config {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		PublicHost: "127.0.0.1",
	})
	if err != nil {
		t.Fatalf("starting fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	bucket := fmt.Sprintf("dbarchive-test-%d", gcsBuckets.Add(1))
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return drivers.Config{
		Name:     "gcs-emulator",
		Type:     "gcs",
		Bucket:   bucket,
		Endpoint: srv.URL() + "/storage/v1/",
	}
}
