package conformance_test

import (
	"context"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

func TestFS(t *testing.T) {
	conformance.Run(t, func(t *testing.T) drivers.Bucket {
		b, err := drivers.Open(context.Background(), drivers.Config{
			Name: "fs-conformance", Type: "fs", Path: t.TempDir(), ListPageSize: conformance.ListPageSize,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}
