package archiver_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
)

// FuzzDecodeManifest: DecodeManifest never panics on any input (a manifest
// is read from storage anyone with write access to the bucket can change),
// and a manifest it accepts survives Encode and a second decode unchanged,
// so list, restore and prune all see the same backup.
func FuzzDecodeManifest(f *testing.F) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	m := &archiver.Manifest{
		FormatVersion: archiver.FormatVersion, ID: archiver.NewID(start), Name: "nightly",
		StartTime: start, EndTime: start.Add(90 * time.Second),
		Source:      archiver.SourceInfo{Type: "postgres", Database: "sales", Format: "custom"},
		Tool:        archiver.ToolInfo{Name: "dbarchive", Version: "v0.1.0"},
		Compression: "zstd", CompressionLevel: 3, DataObject: archiver.DataObject,
		UncompressedSize: 1 << 30, StoredSize: 1 << 28,
		UncompressedSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		StoredSHA256:       "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		PartSize:           8 << 20, PartCount: 32,
		PartsObject: archiver.PartsObject, PartsSHA256: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		Tables: &archiver.TablesInfo{Object: archiver.TablesObject, SHA256: "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677",
			Size: 4096, Format: "postgres-custom", Count: 12, Rows: 1e6},
	}
	good, err := m.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// An exec source's: no table list.
	exec := *m
	exec.Source, exec.Tables = archiver.SourceInfo{Type: "exec"}, &archiver.TablesInfo{NotRecorded: "exec sources record no tables"}
	goodExec, err := exec.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(goodExec)
	// A format-2 manifest: no table list.
	v2 := *m
	v2.FormatVersion, v2.Tables = 2, nil
	good2, err := v2.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good2)
	// A format-1 manifest: no parts object.
	v1 := v2
	v1.FormatVersion, v1.PartsObject, v1.PartsSHA256 = 1, "", ""
	good1, err := v1.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good1)
	f.Add([]byte(`{"formatVersion":4}`))
	f.Add([]byte(`{"formatVersion":1,"unknown":true}`))
	f.Add(append(append([]byte{}, good...), " {}"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		m1, err := archiver.DecodeManifest(data)
		if err != nil {
			if m1 != nil {
				t.Fatalf("DecodeManifest returned a manifest with its error %v", err)
			}
			return
		}
		enc1, err := m1.Encode()
		if err != nil {
			t.Fatalf("a decoded manifest does not encode: %v", err)
		}
		m2, err := archiver.DecodeManifest(enc1)
		if err != nil {
			t.Fatalf("an encoded manifest does not decode: %v\n%s", err, enc1)
		}
		enc2, err := m2.Encode()
		if err != nil || !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding is not stable (err %v):\n%s\n%s", err, enc1, enc2)
		}
		// Times decode with a zone of their own; compare instants.
		if !m1.StartTime.Equal(m2.StartTime) || !m1.EndTime.Equal(m2.EndTime) {
			t.Fatalf("times changed: %v..%v became %v..%v", m1.StartTime, m1.EndTime, m2.StartTime, m2.EndTime)
		}
		m1.StartTime, m1.EndTime, m2.StartTime, m2.EndTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("manifest changed on a round trip:\n%+v\n%+v", m1, m2)
		}
	})
}
