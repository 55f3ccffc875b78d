package archiver

import (
	"fmt"

	"github.com/dbarchive/dbarchive/drivers"
)

// MinCapacity is the largest stored stream every plan must accept: 5 TiB,
// the largest object S3 itself allows.
const MinCapacity int64 = 5 << 40

// PartPlan sizes the parts of a stream whose length is unknown up front.
// The first Flat parts have size Base; after them the size doubles every Step
// parts, capped at the driver's maximum. Memory therefore stays flat for all
// but the largest backups (25 GiB at 5 MiB on S3), while the driver's part
// limit still admits MinCapacity.
type PartPlan struct {
	Base     int64
	Flat     int
	Step     int
	Max      int64
	MaxParts int
}

// minGrowthSteps is the fewest doublings a plan spreads across the parts
// after Flat. Ten take a 16 MiB base past 5 TiB on a 10,000-part driver; a
// smaller base gets more, shorter steps.
const minGrowthSteps = 10

// NewPartPlan fits a plan to a driver's limits, starting from the requested
// part size (clamped into the driver's range).
func NewPartPlan(base int64, l drivers.Limits) (PartPlan, error) {
	if l.MaxParts < 1 || l.MaxPartSize < 1 {
		return PartPlan{}, fmt.Errorf("driver limits %+v are incomplete", l)
	}
	base = max(base, l.MinPartSize, 1)
	base = min(base, l.MaxPartSize)
	p := PartPlan{Base: base, Flat: l.MaxParts / 2, Max: l.MaxPartSize, MaxParts: l.MaxParts}
	for steps := minGrowthSteps; ; steps *= 2 {
		p.Step = max(1, (l.MaxParts-p.Flat)/steps)
		if p.Capacity() >= MinCapacity {
			return p, nil
		}
		if p.Step == 1 {
			return p, fmt.Errorf("%d parts of at most %d bytes cannot hold %d bytes", l.MaxParts, l.MaxPartSize, MinCapacity)
		}
	}
}

// Size is the size of part n (1-based).
func (p PartPlan) Size(n int) int64 {
	size := p.Base
	if n <= p.Flat {
		return min(size, p.Max)
	}
	for doublings := (n-p.Flat-1)/p.Step + 1; doublings > 0 && size < p.Max; doublings-- {
		size *= 2
	}
	return min(size, p.Max)
}

// Capacity is the largest stream the plan fits into MaxParts parts.
func (p PartPlan) Capacity() int64 {
	total := int64(min(p.Flat, p.MaxParts)) * p.Size(1)
	for n := p.Flat + 1; n <= p.MaxParts; n += p.Step {
		count := min(p.Step, p.MaxParts-n+1)
		total += int64(count) * p.Size(n)
	}
	return total
}
