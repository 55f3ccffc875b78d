package archiver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// readBack checks a successful backup the way a user meets it later: the
// repo lists it, its manifest read back from storage is the one Backup
// returned, latest of its set resolves to it, its parts object describes
// the data object part by part, and a restore from the manifest that was
// read (not the in-memory one) gives data back. It returns the parts.
func readBack(t *testing.T, b *drivers.Bucket, prefix string, m *archiver.Manifest, data []byte) []archiver.PartInfo {
	t.Helper()
	ctx := context.Background()
	listed, problems, err := archiver.List(ctx, b, prefix)
	if err != nil || len(problems) != 0 {
		t.Fatalf("List after the backup: %v, problems %v", err, problems)
	}
	var found *archiver.Manifest
	for _, l := range listed {
		if l.ID == m.ID {
			found = l
		}
	}
	if found == nil {
		t.Fatalf("List does not show backup %s (it shows %v)", m.ID, ids(listed))
	}
	read, err := archiver.ReadManifest(ctx, b, prefix, m.ID)
	if err != nil {
		t.Fatalf("ReadManifest of the new backup: %v", err)
	}
	if !reflect.DeepEqual(read, m) || !reflect.DeepEqual(found, m) {
		want, _ := json.Marshal(m)
		got, _ := json.Marshal(read)
		t.Fatalf("the stored manifest differs from the one Backup returned:\nstored   %s\nreturned %s", got, want)
	}
	latest, err := archiver.Resolve(ctx, b, prefix, "latest", archiver.SetFilter{Type: m.Source.Type, Database: m.Source.Database, Name: m.Name, HasName: true})
	if err != nil || latest.ID != m.ID {
		t.Fatalf("Resolve latest of the backup's set = %v, %v; want %s", latest, err, m.ID)
	}

	// The parts object: one entry per part, adding up to the data object,
	// each the sha256 of its byte range.
	stored := readObject(t, b, prefix+"/"+m.ID+"/"+m.DataObject)
	if int64(len(stored)) != m.StoredSize || hexSum(stored) != m.StoredSHA256 {
		t.Fatalf("data object: %d bytes sha256 %s; manifest says %d bytes %s", len(stored), hexSum(stored), m.StoredSize, m.StoredSHA256)
	}
	partsJSON := readObject(t, b, prefix+"/"+m.ID+"/"+m.PartsObject)
	if hexSum(partsJSON) != m.PartsSHA256 {
		t.Fatalf("parts object has sha256 %s, the manifest says %s", hexSum(partsJSON), m.PartsSHA256)
	}
	var x archiver.PartIndex
	if err := json.Unmarshal(partsJSON, &x); err != nil || x.ID != m.ID || len(x.Parts) != m.PartCount || m.PartCount < 1 {
		t.Fatalf("parts object %s: %v; want %d parts of %s", partsJSON, err, m.PartCount, m.ID)
	}
	off := int64(0)
	for i, p := range x.Parts {
		if p.Size < 0 || off+p.Size > int64(len(stored)) || hexSum(stored[off:off+p.Size]) != p.SHA256 {
			t.Fatalf("part %d (size %d at offset %d) does not match the data object", i+1, p.Size, off)
		}
		off += p.Size
	}
	if off != m.StoredSize {
		t.Fatalf("parts add up to %d bytes, the data object has %d", off, m.StoredSize)
	}

	var got bytes.Buffer
	if err := archiver.Restore(ctx, b, read, archiver.RestoreOptions{Prefix: prefix}, func(r io.Reader) error {
		_, err := io.Copy(&got, r)
		return err
	}); err != nil {
		t.Fatalf("Restore from the manifest read back: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("restored %d bytes, want the %d backed up", got.Len(), len(data))
	}
	return x.Parts
}

func readObject(t *testing.T, b *drivers.Bucket, key string) []byte {
	t.Helper()
	if key[0] == '/' {
		key = key[1:]
	}
	r, err := b.NewRangeReader(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

// noise returns n bytes zstd cannot shrink, quickly (a dump-sized buffer
// of them is generated in milliseconds even under the race detector).
func noise(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	out := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(out)
	return out
}

func hexSum(p []byte) string {
	sum := sha256.Sum256(p)
	return hex.EncodeToString(sum[:])
}

// TestBackupReadsBack: backups of every size class — empty, one byte, one
// part, many parts, a stream that ends exactly on a part boundary — with
// and without a repo prefix, each read back through the catalog, with
// every part but the last of exactly the part size.
func TestBackupReadsBack(t *testing.T) {
	t.Parallel()
	const partSize = 64 << 10
	for _, tc := range []struct {
		name   string
		prefix string
		data   []byte
	}{
		{"empty", "", nil},
		{"one byte", "p", []byte{'x'}},
		{"one part", "p/q", compressible(21, 100_000)},
		{"many parts", "", noise(22, 5*partSize+1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := openFS(t)
			start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
			clock := start
			now := func() time.Time { clock = clock.Add(1500 * time.Millisecond); return clock }
			m, err := archiver.Backup(context.Background(), b, bytesSource(tc.data), archiver.BackupOptions{
				Prefix: tc.prefix, Name: "nightly", PartSize: partSize, Level: 5, ToolVersion: "v9.9.9", Now: now,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := archiver.Manifest{
				FormatVersion: 3, ID: m.ID, Name: "nightly",
				StartTime: start.Add(1500 * time.Millisecond), EndTime: start.Add(3 * time.Second),
				Source: archiver.SourceInfo{Type: "exec", Database: "testdb"}, Tool: archiver.ToolInfo{Name: "dbarchive", Version: "v9.9.9"},
				Compression: "zstd", CompressionLevel: 5, DataObject: archiver.DataObject,
				UncompressedSize: int64(len(tc.data)), UncompressedSHA256: hexSum(tc.data),
				StoredSize: m.StoredSize, StoredSHA256: m.StoredSHA256, PartSize: partSize, PartCount: m.PartCount,
				PartsObject: archiver.PartsObject, PartsSHA256: m.PartsSHA256,
				Tables: &archiver.TablesInfo{NotRecorded: "exec sources record no tables"},
			}
			if !reflect.DeepEqual(*m, want) {
				t.Fatalf("manifest\n%+v\nwant\n%+v", *m, want)
			}
			if got, err := archiver.ParseID(m.ID); err != nil || !got.Equal(want.StartTime) {
				t.Fatalf("backup id %s: time %v, %v; want the start time %v", m.ID, got, err, want.StartTime)
			}
			if m.Duration() != 1500*time.Millisecond {
				t.Fatalf("Duration = %v, want 1.5s", m.Duration())
			}
			parts := readBack(t, b, tc.prefix, m, tc.data)
			wantParts := int((m.StoredSize + partSize - 1) / partSize)
			if wantParts == 0 {
				wantParts = 1 // an empty stream is still one (empty) part
			}
			if len(parts) != wantParts {
				t.Fatalf("%d parts for %d stored bytes of %d-byte parts, want %d", len(parts), m.StoredSize, partSize, wantParts)
			}
			for i, p := range parts[:len(parts)-1] {
				if p.Size != partSize {
					t.Fatalf("part %d has %d bytes, want the planned %d", i+1, p.Size, partSize)
				}
			}
		})
	}
}

// TestPartsFollowThePlan: on a driver that allows few parts, the part size
// stays at the base for the first half of the part limit and then doubles
// with every part (the plan needs a step of one part to reach 5 TiB in 64
// parts), and the parts the upload cuts are exactly those sizes.
func TestPartsFollowThePlan(t *testing.T) {
	t.Parallel()
	const base = 16 << 10
	limits := drivers.Limits{MaxParts: 64, MinPartSize: base, MaxPartSize: 1 << 50}
	plan, err := archiver.NewPartPlan(base, limits)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Base != base || plan.Flat != 32 || plan.Step != 1 || plan.Capacity() < archiver.MinCapacity {
		t.Fatalf("plan %+v (capacity %d), want base %d, 32 flat parts, then doubling every part", plan, plan.Capacity(), base)
	}
	_, dir := openFS(t)
	b := wrapFS(t, dir, &limitedDriver{limits: limits})
	// Incompressible, so the stored size is known: 32 flat parts, then 2×,
	// 4× and part of 8× the base.
	data := noise(23, 32*base+2*base+4*base+base/2)
	m, err := archiver.Backup(context.Background(), b, bytesSource(data), archiver.BackupOptions{PartSize: base})
	if err != nil {
		t.Fatal(err)
	}
	parts := readBack(t, b, "", m, data)
	if len(parts) != 35 {
		t.Fatalf("%d parts, want 35 (32 flat, then 2×, 4× and a last part)", len(parts))
	}
	for i, p := range parts[:34] {
		want := int64(base)
		switch i + 1 {
		case 33:
			want = 2 * base
		case 34:
			want = 4 * base
		}
		if p.Size != want {
			t.Fatalf("part %d has %d bytes, want %d", i+1, p.Size, want)
		}
	}
	if last := parts[34].Size; last <= 0 || last > 8*base {
		t.Fatalf("last part has %d bytes, want 1..%d", last, 8*base)
	}
}

// limitedDriver is the fs driver reporting other multipart limits, as a
// store with fewer parts would; the portable layer enforces them.
type limitedDriver struct {
	driver.Bucket
	limits drivers.Limits
}

func (l *limitedDriver) setDriver(d driver.Bucket) { l.Bucket = d }
func (l *limitedDriver) Limits() drivers.Limits    { return l.limits }

// TestPartPlanSchedule states the plan's schedule on the limits of the real
// stores: Base for parts 1..Flat, then twice the previous size at the start
// of every Step parts, never above the driver's maximum, and every plan
// holds 5 TiB in the driver's part limit.
func TestPartPlanSchedule(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		base       int64
		limits     drivers.Limits
		flat, step int
	}{
		// Ten doublings 500 parts apart take 16 MiB past 5 TiB in 10,000
		// parts; 5 MiB needs twenty, 250 apart.
		"s3":           {5 << 20, drivers.Limits{MaxParts: 10_000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30}, 5000, 250},
		"s3 16 MiB":    {16 << 20, drivers.Limits{MaxParts: 10_000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30}, 5000, 500},
		"s3 small ask": {1 << 20, drivers.Limits{MaxParts: 10_000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30}, 5000, 250},
		"azure":        {5 << 20, drivers.Limits{MaxParts: 50_000, MinPartSize: 1, MaxPartSize: 4000 << 20}, 25_000, 2500},
		"huge ask":     {64 << 30, drivers.Limits{MaxParts: 10_000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30}, 5000, 500},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := archiver.NewPartPlan(tc.base, tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			wantBase := min(max(tc.base, tc.limits.MinPartSize), tc.limits.MaxPartSize)
			if p.Base != wantBase || p.Flat != tc.flat || p.Step != tc.step || p.Max != tc.limits.MaxPartSize || p.MaxParts != tc.limits.MaxParts {
				t.Fatalf("plan %+v; want base %d, %d flat parts, doubling every %d, max %d", p, wantBase, tc.flat, tc.step, tc.limits.MaxPartSize)
			}
			size := p.Base
			var total int64
			for n := 1; n <= p.MaxParts; n++ {
				if n > p.Flat && (n-p.Flat-1)%p.Step == 0 {
					size = min(2*size, p.Max)
				}
				if got := p.Size(n); got != size {
					t.Fatalf("part %d: size %d, want %d (plan %+v)", n, got, size, p)
				}
				total += size
			}
			if p.Capacity() != total || total < archiver.MinCapacity {
				t.Fatalf("capacity %d, the parts add up to %d; want that, at least %d", p.Capacity(), total, archiver.MinCapacity)
			}
		})
	}
}

// TestPartPlanNeedsLimits: a driver that reports no part limit, or no part
// size, is a driver bug, reported as such rather than as a capacity the
// plan cannot reach; a driver of one part of one byte has limits, too
// small ones.
func TestPartPlanNeedsLimits(t *testing.T) {
	t.Parallel()
	for _, l := range []drivers.Limits{{}, {MaxParts: 10_000}, {MaxPartSize: 5 << 30}} {
		if _, err := archiver.NewPartPlan(5<<20, l); err == nil || !strings.Contains(err.Error(), "incomplete") {
			t.Errorf("NewPartPlan with limits %+v = %v, want them called incomplete", l, err)
		}
	}
	if _, err := archiver.NewPartPlan(1, drivers.Limits{MaxParts: 1, MaxPartSize: 1}); err == nil || !strings.Contains(err.Error(), "cannot hold") {
		t.Errorf("NewPartPlan with one part of one byte = %v, want it unable to hold 5 TiB", err)
	}
}

// TestStreamEndingOnAPartBoundary: when the stored stream ends exactly where
// a part ends, that part is the last one: no empty part follows.
func TestStreamEndingOnAPartBoundary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := noise(24, 300_000)
	b, _ := openFS(t)
	first, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10, EncoderConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The same stream again, with parts of exactly its stored size (and,
	// when it divides evenly, half of it).
	for _, parts := range []int64{1, 2} {
		if first.StoredSize%parts != 0 {
			continue
		}
		b, _ := openFS(t)
		m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: first.StoredSize / parts, EncoderConcurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		if m.StoredSize != first.StoredSize || int64(m.PartCount) != parts {
			t.Fatalf("%d stored bytes in parts of %d: %d parts (stored %d), want %d", first.StoredSize, first.StoredSize/parts, m.PartCount, m.StoredSize, parts)
		}
		readBack(t, b, "", m, data)
	}
}
