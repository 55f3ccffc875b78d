package conformance_test

import (
	"context"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
	_ "github.com/dbarchive/dbarchive/drivers/azure"
)

// TestAzure runs the suite against one Azurite process, with a fresh
// container per subtest so that no subtest sees another's leftovers.
func TestAzure(t *testing.T) {
	base := emulators.Azurite(t)
	base.Name = "azure-conformance"
	base.ListPageSize = conformance.ListPageSize
	conformance.Run(t, func(t *testing.T) drivers.Bucket {
		cfg := base
		cfg.Bucket = emulators.NewContainerName()
		b, err := drivers.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}
