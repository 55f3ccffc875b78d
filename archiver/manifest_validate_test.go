package archiver_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
)

// goodManifest is a valid manifest of the current plain format (3) with
// every field set, and hashes that use every hex digit.
func goodManifest() archiver.Manifest {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return archiver.Manifest{
		FormatVersion: 3, ID: "20261126T100000.000Z-0a1b2c3d", Name: "nightly",
		StartTime: start, EndTime: start.Add(90 * time.Second),
		Source:      archiver.SourceInfo{Type: "postgres", Database: "sales", Format: "custom"},
		Tool:        archiver.ToolInfo{Name: "dbarchive", Version: "v1.2.3"},
		Compression: "zstd", CompressionLevel: 3, DataObject: archiver.DataObject,
		UncompressedSize: 1000, StoredSize: 250,
		UncompressedSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		StoredSHA256:       "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		PartSize:           5 << 20, PartCount: 1,
		PartsObject: archiver.PartsObject, PartsSHA256: "9999999999999999999999999999999999999999999999999999999999999999",
		Tables: &archiver.TablesInfo{Object: archiver.TablesObject, SHA256: "8888888888888888888888888888888888888888888888888888888888888888",
			Size: 200, Format: "postgres-custom", Count: 2, Rows: 7},
	}
}

// TestGoodManifestDecodes: a manifest this version writes, and one of every
// older format version, decodes to exactly the manifest encoded (List would
// otherwise find no backups, or restore a different one), and so does one
// at the edges of what is valid: zero sizes, an end time equal to the start.
func TestGoodManifestDecodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(m *archiver.Manifest)
	}{
		{"current format", func(*archiver.Manifest) {}},
		{"format 1", func(m *archiver.Manifest) { m.FormatVersion, m.PartsObject, m.PartsSHA256, m.Tables = 1, "", "", nil }},
		{"format 2", func(m *archiver.Manifest) { m.FormatVersion, m.Tables = 2, nil }},
		{"empty backup", func(m *archiver.Manifest) {
			m.UncompressedSize, m.StoredSize, m.PartSize, m.PartCount, m.EndTime = 0, 0, 0, 0, m.StartTime
		}},
		{"other object names", func(m *archiver.Manifest) { m.DataObject, m.PartsObject = "dump.zst", "index.json" }},
		{"hashes of all digits", func(m *archiver.Manifest) {
			m.StoredSHA256 = strings.Repeat("0", 64)
			m.UncompressedSHA256 = strings.Repeat("f", 64)
			m.PartsSHA256 = strings.Repeat("a9", 32)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := goodManifest()
			tc.edit(&m)
			data, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !json.Valid(data) || !strings.Contains(string(data), `"id": "`+m.ID+`"`) {
				t.Fatalf("Encode gave %q, want indented JSON naming the backup", data)
			}
			got, err := archiver.DecodeManifest(data)
			if err != nil {
				t.Fatalf("DecodeManifest of a good manifest: %v", err)
			}
			if !reflect.DeepEqual(*got, m) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", *got, m)
			}
		})
	}
}

// TestBadManifestRefused: a manifest is read from a bucket anyone with write
// access can change, and restore trusts it for the keys it reads and the
// checks it makes; each kind of damage is refused with an error naming the
// field, by DecodeManifest and by Encode (a backup never writes one).
func TestBadManifestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(m *archiver.Manifest)
		field string
	}{
		{"format version 0", func(m *archiver.Manifest) { m.FormatVersion = 0 }, "formatVersion"},
		{"negative format version", func(m *archiver.Manifest) { m.FormatVersion = -1 }, "formatVersion"},
		{"bad id", func(m *archiver.Manifest) { m.ID = "../../etc" }, "id"},
		{"empty id", func(m *archiver.Manifest) { m.ID = "" }, "id"},
		{"other compression", func(m *archiver.Manifest) { m.Compression = "gzip" }, "compression"},
		{"data object outside the backup", func(m *archiver.Manifest) { m.DataObject = "../other/data.zst" }, "dataObject"},
		{"data object in a subdirectory", func(m *archiver.Manifest) { m.DataObject = "sub/data.zst" }, "dataObject"},
		{"data object ..", func(m *archiver.Manifest) { m.DataObject = ".." }, "dataObject"},
		{"data object .", func(m *archiver.Manifest) { m.DataObject = "." }, "dataObject"},
		{"no data object", func(m *archiver.Manifest) { m.DataObject = "" }, "dataObject"},
		{"data object is the manifest", func(m *archiver.Manifest) { m.DataObject = archiver.ManifestObject }, "dataObject"},
		{"negative stored size", func(m *archiver.Manifest) { m.StoredSize = -1 }, "storedSize"},
		{"negative uncompressed size", func(m *archiver.Manifest) { m.UncompressedSize = -1 }, "storedSize"},
		{"stored sha256 too short", func(m *archiver.Manifest) { m.StoredSHA256 = m.StoredSHA256[:63] }, "storedSha256"},
		{"stored sha256 too long", func(m *archiver.Manifest) { m.StoredSHA256 += "0" }, "storedSha256"},
		{"stored sha256 upper case", func(m *archiver.Manifest) { m.StoredSHA256 = strings.ToUpper(m.StoredSHA256) }, "storedSha256"},
		{"stored sha256 with g", func(m *archiver.Manifest) { m.StoredSHA256 = "g" + m.StoredSHA256[1:] }, "storedSha256"},
		{"stored sha256 with /", func(m *archiver.Manifest) { m.StoredSHA256 = "/" + m.StoredSHA256[1:] }, "storedSha256"},
		{"stored sha256 with :", func(m *archiver.Manifest) { m.StoredSHA256 = ":" + m.StoredSHA256[1:] }, "storedSha256"},
		{"stored sha256 with `", func(m *archiver.Manifest) { m.StoredSHA256 = "`" + m.StoredSHA256[1:] }, "storedSha256"},
		{"uncompressed sha256 bad", func(m *archiver.Manifest) { m.UncompressedSHA256 = strings.Repeat("z", 64) }, "uncompressedSha256"},
		{"parts sha256 bad", func(m *archiver.Manifest) { m.PartsSHA256 = strings.Repeat("A", 64) }, "partsSha256"},
		{"negative part size", func(m *archiver.Manifest) { m.PartSize = -1 }, "partSize"},
		{"negative part count", func(m *archiver.Manifest) { m.PartCount = -1 }, "partSize"},
		{"parts object is the manifest", func(m *archiver.Manifest) { m.PartsObject = archiver.ManifestObject }, "partsObject"},
		{"parts object outside the backup", func(m *archiver.Manifest) { m.PartsObject = "../x.json" }, "partsObject"},
		{"format 1 with a parts sha256", func(m *archiver.Manifest) { m.FormatVersion, m.PartsObject = 1, "" }, "partsObject"},
		{"no source type", func(m *archiver.Manifest) { m.Source.Type = "" }, "source.type"},
		{"end before start", func(m *archiver.Manifest) { m.EndTime = m.StartTime.Add(-time.Millisecond) }, "endTime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := goodManifest()
			tc.edit(&m)
			if data, err := m.Encode(); err == nil || data != nil || !strings.Contains(err.Error(), "manifest field "+tc.field+":") {
				t.Fatalf("Encode = %q, %v; want an error naming field %s", data, err, tc.field)
			}
			data, err := json.Marshal(&m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := archiver.DecodeManifest(data)
			if got != nil || err == nil || !strings.Contains(err.Error(), "manifest field "+tc.field+":") {
				t.Fatalf("DecodeManifest = %+v, %v; want an error naming field %s", got, err, tc.field)
			}
		})
	}
}

// TestManifestNotJSON: what is not one JSON object of known fields is not a
// manifest.
func TestManifestNotJSON(t *testing.T) {
	t.Parallel()
	m := goodManifest()
	good, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"truncated", string(good[:len(good)/2]), "not valid JSON"},
		{"trailing object", string(good) + ` {}`, "manifest"},
		{"unknown field", strings.Replace(string(good), `"name":`, `"nmae":"x","name":`, 1), "unknown field"},
		{"newer format", strings.Replace(string(good), `"formatVersion":3`, fmt.Sprintf(`"formatVersion":%d`, archiver.FormatVersion+1), 1),
			fmt.Sprintf("format version %d is newer than this dbarchive understands (%d)", archiver.FormatVersion+1, archiver.FormatVersion)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := archiver.DecodeManifest([]byte(tc.data))
			if got != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeManifest = %+v, %v; want an error with %q", got, err, tc.want)
			}
		})
	}
}

// TestPartIndexCheck: a parts object is used for a backup only when it is
// that backup's, lists as many parts as the manifest, and its part sizes
// are possible and add up to the data object's size.
func TestPartIndexCheck(t *testing.T) {
	t.Parallel()
	m := goodManifest()
	m.StoredSize, m.PartCount = 250, 3
	sum := strings.Repeat("0123456789abcdef", 4)
	good := archiver.PartIndex{ID: m.ID, Parts: []archiver.PartInfo{{Size: 100, SHA256: sum}, {Size: 100, SHA256: sum}, {Size: 50, SHA256: sum}}}
	if err := good.Check(&m); err != nil {
		t.Fatalf("Check of a matching parts object: %v", err)
	}
	whole := archiver.PartIndex{ID: m.ID, Parts: []archiver.PartInfo{{Size: 250, SHA256: sum}, {Size: 0, SHA256: sum}, {Size: 0, SHA256: sum}}}
	if err := whole.Check(&m); err != nil {
		t.Fatalf("Check of parts of 250, 0 and 0 bytes: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(x *archiver.PartIndex)
		want string
	}{
		{"other backup", func(x *archiver.PartIndex) { x.ID = "20261126T100000.000Z-ffffffff" }, "names backup"},
		{"a part missing", func(x *archiver.PartIndex) { x.Parts = x.Parts[:2] }, "lists 2 parts, the manifest says 3"},
		{"a part more", func(x *archiver.PartIndex) { x.Parts = append(x.Parts, archiver.PartInfo{SHA256: sum}) }, "lists 4 parts"},
		{"negative size", func(x *archiver.PartIndex) { x.Parts[1].Size = -1; x.Parts[2].Size = 151 }, "part 2 has size -1"},
		{"larger than the object", func(x *archiver.PartIndex) { x.Parts[0].Size, x.Parts[1].Size, x.Parts[2].Size = 251, 0, -1 }, "part 1 has size 251"},
		{"bad sha256", func(x *archiver.PartIndex) { x.Parts[2].SHA256 = strings.ToUpper(sum) }, "part 3 has size 50"},
		{"sizes add up to less", func(x *archiver.PartIndex) { x.Parts[2].Size = 49 }, "add up to 249 bytes, the manifest says 250"},
		{"sizes add up to more", func(x *archiver.PartIndex) { x.Parts[2].Size = 51 }, "add up to 251 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := good
			x.Parts = append([]archiver.PartInfo(nil), good.Parts...)
			tc.edit(&x)
			if err := x.Check(&m); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestManifestRatio: the compression ratio list shows is uncompressed over
// stored size, and 0 (not a division by zero) for an empty backup.
func TestManifestRatio(t *testing.T) {
	t.Parallel()
	m := goodManifest()
	m.UncompressedSize, m.StoredSize = 1000, 250
	if r := m.Ratio(); r != 4 {
		t.Fatalf("Ratio of 1000 over 250 bytes = %v, want 4", r)
	}
	m.StoredSize = 0
	if r := m.Ratio(); r != 0 {
		t.Fatalf("Ratio of an empty backup = %v, want 0", r)
	}
}
