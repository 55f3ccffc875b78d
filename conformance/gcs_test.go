package conformance_test

import (
	"context"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
	_ "github.com/dbarchive/dbarchive/drivers/gcs"
)

func TestGCS(t *testing.T) {
	conformance.Run(t, func(t *testing.T) drivers.Bucket {
		cfg := emulators.GCS(t)
		cfg.ListPageSize = conformance.ListPageSize
		b, err := drivers.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}
