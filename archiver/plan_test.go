package archiver

import (
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
)

func TestPartPlanReaches5TiB(t *testing.T) {
	drivers := map[string]drivers.Limits{
		"s3/ibmcos": {MaxParts: 10_000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30},
		"azure":     {MaxParts: 50_000, MinPartSize: 1, MaxPartSize: 4000 << 20},
		"gcs":       {MaxParts: 10_000, MinPartSize: 1, MaxPartSize: 5 << 30},
		"fs":        {MaxParts: 100_000, MinPartSize: 1, MaxPartSize: 5 << 30},
	}
	for name, l := range drivers {
		for _, base := range []int64{1 << 10, 64 << 10, 5 << 20, DefaultPartSize, 16 << 20, 64 << 20} {
			p, err := NewPartPlan(base, l)
			if err != nil {
				t.Fatalf("%s base %d: %v", name, base, err)
			}
			if p.Base < l.MinPartSize {
				t.Fatalf("%s: base %d below the driver minimum %d", name, p.Base, l.MinPartSize)
			}
			// Walk the parts a 5 TiB stream needs, as the uploader would.
			var total int64
			n := 0
			prev := int64(0)
			for total < MinCapacity {
				n++
				if n > l.MaxParts {
					t.Fatalf("%s base %d: 5 TiB needs more than %d parts", name, base, l.MaxParts)
				}
				size := p.Size(n)
				if size > l.MaxPartSize || size < l.MinPartSize || size < prev {
					t.Fatalf("%s base %d: part %d has size %d (prev %d), outside [%d, %d] or shrinking", name, base, n, size, prev, l.MinPartSize, l.MaxPartSize)
				}
				prev = size
				total += size
			}
			if p.Capacity() < MinCapacity {
				t.Fatalf("%s base %d: capacity %d < 5 TiB", name, base, p.Capacity())
			}
		}
	}
}

func TestPartPlanKeepsSmallBackupsSmall(t *testing.T) {
	p, err := NewPartPlan(DefaultPartSize, drivers.Limits{MaxParts: 10_000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30})
	if err != nil {
		t.Fatal(err)
	}
	// An 8 GiB stream must not grow the buffers: memory stays flat with size.
	for n := 1; int64(n)*DefaultPartSize <= 8<<30; n++ {
		if p.Size(n) != DefaultPartSize {
			t.Fatalf("part %d has size %d; the first 8 GiB should use the base size", n, p.Size(n))
		}
	}
}

func TestPartPlanRejectsImpossibleLimits(t *testing.T) {
	if _, err := NewPartPlan(1<<20, drivers.Limits{MaxParts: 100, MinPartSize: 1, MaxPartSize: 1 << 30}); err == nil {
		t.Fatal("a driver that can hold only 100 GiB must be refused")
	}
}
