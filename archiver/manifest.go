package archiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"
)

// FormatVersion is the archive layout this build writes. Readers accept this
// version and older ones; a newer one is refused with a clear error rather
// than misread.
//
//   - 1: data object and manifest.
//   - 2: adds the parts object (PartsObject, PartsSHA256): the size and
//     sha256 of every part, so a restore checks each ranged read before the
//     decoder sees it and names the damaged part.
//   - 3: adds Tables: the table list object (TablesObject) with each
//     table's rows and digest as the dump held them, or why there is none.
//   - 4: adds encryption (Encryption): the data object is one age file
//     (DataObjectEncrypted) of the zstd stream.
//
// A backup is written with the lowest version that describes it (see
// formatFor): plain backups are 3, so a dbarchive that knows table lists
// but not encryption still reads them, and refuses an encrypted one by its
// version instead of taking the age file for a zstd stream.
const FormatVersion = 4

// formatEncryption is the first format version with Encryption.
const formatEncryption = 4

// formatFor is the version a new backup described by m is written with.
func formatFor(m *Manifest) int {
	if m.Encryption != nil {
		return formatEncryption
	}
	return 3
}

// File names inside a backup's directory.
const (
	DataObject = "data.zst"
	// DataObjectEncrypted is the data object of an encrypted backup: `age
	// -d` gives data.zst's bytes.
	DataObjectEncrypted = "data.zst.age"
	PartsObject         = "parts.json"
	ManifestObject      = "manifest.json"
)

// Manifest describes one finished backup. It is written after the data
// object is complete and is what makes the backup exist. It never holds a
// credential.
type Manifest struct {
	FormatVersion int       `json:"formatVersion"`
	ID            string    `json:"id"`
	Name          string    `json:"name,omitempty"`
	StartTime     time.Time `json:"startTime"`
	EndTime       time.Time `json:"endTime"`

	Source SourceInfo `json:"source"`
	Tool   ToolInfo   `json:"tool"`

	// Compression is always "zstd": the data object is one standard zstd
	// stream that `zstd -d` decodes.
	Compression      string `json:"compression"`
	CompressionLevel int    `json:"compressionLevel"`

	// DataObject is the key of the data object relative to the backup's
	// directory.
	DataObject string `json:"dataObject"`

	UncompressedSize   int64  `json:"uncompressedSize"`
	StoredSize         int64  `json:"storedSize"`
	UncompressedSHA256 string `json:"uncompressedSha256"`
	StoredSHA256       string `json:"storedSha256"`

	// PartSize is the size of the first part; later parts may be larger (see
	// PartPlan). PartCount is the number of parts the upload completed with.
	PartSize  int64 `json:"partSize"`
	PartCount int   `json:"partCount"`

	// PartsObject (format 2 and later) is the key, relative to the backup's
	// directory, of the parts object (see PartIndex); PartsSHA256 is that
	// object's sha256. The parts object is committed before the manifest.
	// Format 1 manifests have neither.
	PartsObject string `json:"partsObject,omitempty"`
	PartsSHA256 string `json:"partsSha256,omitempty"`

	// Tables (format 3 and later) references the table list object,
	// committed before the manifest, or says why it was not recorded.
	Tables *TablesInfo `json:"tables,omitempty"`

	// Encryption (format 4 and later), when set, says the data object is
	// encrypted. StoredSHA256, StoredSize and the parts object describe the
	// encrypted bytes, so a backup's integrity is checked without a key;
	// UncompressedSHA256 is checked after decryption and decompression.
	Encryption *EncryptionInfo `json:"encryption,omitempty"`
}

// EncryptionInfo is how a backup is encrypted. It holds public keys only,
// never an identity.
type EncryptionInfo struct {
	// Scheme is "age": the data object is one age file
	// (age-encryption.org/v1) holding the zstd stream.
	Scheme string `json:"scheme"`
	// Recipients are the public keys the backup is encrypted to (age1…, or
	// an ssh public key without its comment), or "scrypt" for a passphrase.
	Recipients []string `json:"recipients"`
}

// PartIndex is the content of the parts object: the data object's parts in
// order, each with its size and sha256. The parts are the data object's
// byte ranges back to back, so the sizes add up to StoredSize.
type PartIndex struct {
	ID    string     `json:"id"`
	Parts []PartInfo `json:"parts"`
}

// PartInfo is one part of the data object.
type PartInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Check reports whether the index fits manifest m: its backup, part count
// and total size.
func (x *PartIndex) Check(m *Manifest) error {
	if x.ID != m.ID {
		return fmt.Errorf("parts object names backup %q", x.ID)
	}
	if len(x.Parts) != m.PartCount {
		return fmt.Errorf("parts object lists %d parts, the manifest says %d", len(x.Parts), m.PartCount)
	}
	var total int64
	for i, p := range x.Parts {
		if p.Size < 0 || p.Size > m.StoredSize || !isSHA256Hex(p.SHA256) {
			return fmt.Errorf("parts object: part %d has size %d and sha256 %q", i+1, p.Size, p.SHA256)
		}
		total += p.Size
	}
	if total != m.StoredSize {
		return fmt.Errorf("parts object: the parts add up to %d bytes, the manifest says %d", total, m.StoredSize)
	}
	return nil
}

// SourceInfo records what was backed up.
type SourceInfo struct {
	Type     string `json:"type"`
	Database string `json:"database,omitempty"`
	// Format is the dump format where the source has several (postgres:
	// custom, plain, tar); restore picks its tool by it.
	Format string `json:"format,omitempty"`
}

// ToolInfo records which program wrote the backup.
type ToolInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Ratio is uncompressed size over stored size, or 0 for an empty backup.
func (m *Manifest) Ratio() float64 {
	if m.StoredSize == 0 {
		return 0
	}
	return float64(m.UncompressedSize) / float64(m.StoredSize)
}

// Duration is how long the backup took.
func (m *Manifest) Duration() time.Duration { return m.EndTime.Sub(m.StartTime) }

// Encode renders the manifest as indented JSON.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(m, "", "  ")
}

// DecodeManifest parses and validates a manifest. Unknown fields are refused
// only within this format version's own fields; a newer format version is an
// error naming both versions.
func DecodeManifest(data []byte) (*Manifest, error) {
	var probe struct {
		FormatVersion int `json:"formatVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	if probe.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("manifest format version %d is newer than this dbarchive understands (%d); upgrade dbarchive", probe.FormatVersion, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("manifest: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the fields a restore relies on.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("manifest field %s: "+format, append([]any{field}, args...)...))
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		bad("formatVersion", "%d is not supported", m.FormatVersion)
	}
	if _, err := ParseID(m.ID); err != nil {
		bad("id", "%v", err)
	}
	if m.Compression != "zstd" {
		bad("compression", "%q is not supported (want zstd)", m.Compression)
	}
	if !isPlainName(m.DataObject) || m.DataObject == ManifestObject {
		bad("dataObject", "%q must be a plain file name", m.DataObject)
	}
	if m.StoredSize < 0 || m.UncompressedSize < 0 {
		bad("storedSize", "sizes must not be negative")
	}
	if !isSHA256Hex(m.StoredSHA256) {
		bad("storedSha256", "must be 64 hex digits")
	}
	if !isSHA256Hex(m.UncompressedSHA256) {
		bad("uncompressedSha256", "must be 64 hex digits")
	}
	if m.PartSize < 0 || m.PartCount < 0 {
		bad("partSize", "part size and count must not be negative")
	}
	if m.FormatVersion >= 2 {
		if !isPlainName(m.PartsObject) || m.PartsObject == m.DataObject || m.PartsObject == ManifestObject {
			bad("partsObject", "%q must be a plain file name other than the data object and the manifest", m.PartsObject)
		}
		if !isSHA256Hex(m.PartsSHA256) {
			bad("partsSha256", "must be 64 hex digits")
		}
	} else if m.PartsObject != "" || m.PartsSHA256 != "" {
		bad("partsObject", "is not part of format version %d", m.FormatVersion)
	}
	if m.FormatVersion >= 3 {
		if m.Tables == nil {
			bad("tables", "is required from format version 3")
		} else {
			m.Tables.validate(m, bad)
		}
	} else if m.Tables != nil {
		bad("tables", "is not part of format version %d", m.FormatVersion)
	}
	if e := m.Encryption; e != nil {
		if m.FormatVersion < formatEncryption {
			bad("encryption", "is not part of format version %d", m.FormatVersion)
		}
		if e.Scheme != EncryptionAge {
			bad("encryption.scheme", "%q is not supported (want age)", e.Scheme)
		}
		if len(e.Recipients) == 0 {
			bad("encryption.recipients", "must name at least one recipient")
		}
		for i, r := range e.Recipients {
			// Never repeat the value: if it is not a public key it may be
			// a secret written by mistake.
			if !validRecipientText(r) {
				bad("encryption.recipients", "entry %d is not a public key (age1…, ssh-ed25519, ssh-rsa) or scrypt", i+1)
			}
		}
	}
	if m.Source.Type == "" {
		bad("source.type", "is required")
	}
	if m.EndTime.Before(m.StartTime) {
		bad("endTime", "is before startTime")
	}
	return errors.Join(errs...)
}

// isPlainName reports whether s names a file directly inside a backup's
// directory.
func isPlainName(s string) bool {
	return s != "" && s != "." && s != ".." && path.Base(s) == s
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
