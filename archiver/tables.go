package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// TablesObject is the file name of the table list inside a backup's
// directory (format 3 and later).
const TablesObject = "tables.json"

// TablesInfo is the manifest's reference to the table list: the list is
// an object of its own so that a database of 100,000 tables does not make
// the manifest large. Either Object (with SHA256 and Size) or NotRecorded
// is set.
type TablesInfo struct {
	// Object is the key of the table list relative to the backup's
	// directory; SHA256 and Size are the object's.
	Object string `json:"object,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size,omitempty"`
	// Format is the dump format the list was read from (see dumpscan); for
	// a source whose tables are not recorded, the format whose proper end
	// was checked, if its stream was recognised.
	Format string `json:"format,omitempty"`
	// Count and Rows are the number of tables and their rows in total.
	Count int   `json:"count"`
	Rows  int64 `json:"rows"`
	// NotRecorded says why the backup has no table list: its source type
	// (http, exec) or dump format is not read.
	NotRecorded string `json:"notRecorded,omitempty"`
}

func (t *TablesInfo) validate(m *Manifest, bad func(field, format string, args ...any)) {
	switch {
	case t.Object == "" && t.NotRecorded == "":
		bad("tables", "needs an object or a reason it was not recorded")
	case t.Object != "" && t.NotRecorded != "":
		bad("tables.notRecorded", "is set beside a table list object")
	case t.Object == "" && (t.SHA256 != "" || t.Size != 0 || t.Count != 0 || t.Rows != 0):
		bad("tables", "has a sha256, size or counts but no object")
	case t.Object != "":
		if !isPlainName(t.Object) || t.Object == m.DataObject || t.Object == ManifestObject || t.Object == m.PartsObject {
			bad("tables.object", "%q must be a plain file name other than the data, parts and manifest objects", t.Object)
		}
		if !isSHA256Hex(t.SHA256) {
			bad("tables.sha256", "must be 64 hex digits")
		}
		if t.Size <= 0 {
			bad("tables.size", "must be positive")
		}
		if t.Count < 0 || t.Rows < 0 {
			bad("tables.count", "counts must not be negative")
		}
	}
}

// TableList is the content of the table list object: what the dump held of
// each table, as it streamed through the backup.
type TableList struct {
	ID     string `json:"id"`
	Format string `json:"format"`
	// DigestAlgorithm names how each table's digest is computed
	// (dumpscan.DigestAlgorithm).
	DigestAlgorithm string           `json:"digestAlgorithm"`
	Tables          []dumpscan.Table `json:"tables"`
}

// Check reports whether the list fits manifest m.
func (l *TableList) Check(m *Manifest) error {
	if l.ID != m.ID {
		return fmt.Errorf("table list names backup %q", l.ID)
	}
	var rows int64
	for i, t := range l.Tables {
		if t.Name == "" || t.Rows < 0 || len(t.Digest) != 16 {
			return fmt.Errorf("table list: entry %d (%q) has rows %d and digest %q", i+1, t.Name, t.Rows, t.Digest)
		}
		rows += t.Rows
	}
	if len(l.Tables) != m.Tables.Count || rows != m.Tables.Rows {
		return fmt.Errorf("table list holds %d tables and %d rows, the manifest says %d and %d", len(l.Tables), rows, m.Tables.Count, m.Tables.Rows)
	}
	return nil
}

// tableScan is the scanner a backup tees the dump into, and whether what it
// finds is recorded (sources that are not Scannable are only checked for a
// proper end when Sniff recognises their stream).
type tableScan struct {
	scanner     dumpscan.Scanner // nil: nothing is read
	record      bool
	notRecorded string // why nothing is recorded
	result      *dumpscan.Result
}

func newTableScan(src sources.Source) tableScan {
	if s, ok := src.(sources.Scannable); ok {
		if sc := s.DumpScanner(); sc != nil {
			return tableScan{scanner: sc, record: true}
		}
		why := src.Type() + " dumps of this format are not read"
		if f, ok := src.(sources.Formatted); ok {
			why = fmt.Sprintf("%s dumps in %s format are not read", src.Type(), f.Format())
		}
		return tableScan{notRecorded: why}
	}
	return tableScan{scanner: dumpscan.Sniff(), notRecorded: src.Type() + " sources record no tables"}
}

// dump wraps a source's Dump: the scanner sees every byte after the
// pipeline does, and a dump that did not end properly is an error although
// the tool succeeded.
func (ts *tableScan) dump(produce func(context.Context, io.Writer) error) func(context.Context, io.Writer) error {
	if ts.scanner == nil {
		return produce
	}
	return func(ctx context.Context, w io.Writer) error {
		if err := produce(ctx, io.MultiWriter(w, ts.scanner)); err != nil {
			return err
		}
		res, err := ts.scanner.Close()
		if err != nil {
			return fmt.Errorf("the dump tool succeeded, but %w", err)
		}
		ts.result = res
		if ts.record && res.Tables == nil {
			ts.notRecorded = res.NotRead
			ts.record = false
		}
		return nil
	}
}

// encode renders the table list of backup id, or returns nil when
// there is none, with the manifest's reference to it either way.
func (ts *tableScan) encode(id string) ([]byte, *TablesInfo, error) {
	if !ts.record || ts.result == nil {
		info := &TablesInfo{NotRecorded: ts.notRecorded}
		if ts.result != nil {
			info.Format = ts.result.Format
		}
		return nil, info, nil
	}
	list := TableList{ID: id, Format: ts.result.Format, DigestAlgorithm: dumpscan.DigestAlgorithm, Tables: ts.result.Tables}
	data, err := json.Marshal(&list)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	info := &TablesInfo{Object: TablesObject, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Format: list.Format, Count: len(list.Tables)}
	for _, t := range list.Tables {
		info.Rows += t.Rows
	}
	return data, info, nil
}

// TablesObjectEncrypted is the table list's name in an encrypted backup:
// one age file to the backup's recipients.
const TablesObjectEncrypted = TablesObject + ".age"

// encryptTableList encrypts an encoded table list to rs and points info at
// the encrypted object: its sha256 and size are the stored bytes', so the
// list's integrity is checkable without a key, as the data object's is.
func encryptTableList(data []byte, info *TablesInfo, rs []Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := newEncrypter(&buf, rs)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	info.Object, info.SHA256, info.Size = TablesObjectEncrypted, hex.EncodeToString(sum[:]), int64(buf.Len())
	return buf.Bytes(), nil
}

// readTablesStored reads backup m's table list object and checks its size
// and sha256 against the manifest; for an encrypted backup that is the
// ciphertext, checked without a key.
func readTablesStored(ctx context.Context, b *drivers.Bucket, prefix string, m *Manifest) ([]byte, error) {
	if m.Tables == nil || m.Tables.Object == "" {
		return nil, nil
	}
	key := objectKey(prefix, m.ID, m.Tables.Object)
	data, err := func() ([]byte, error) {
		r, err := b.NewRangeReader(ctx, key, 0, -1)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(io.LimitReader(r, m.Tables.Size+1))
	}()
	if err != nil {
		return nil, fmt.Errorf("table list %s: %w", key, err)
	}
	corrupt := func(err error) error { return &CorruptionError{ID: m.ID, Offset: -1, Err: err} }
	if int64(len(data)) != m.Tables.Size {
		return nil, corrupt(fmt.Errorf("table list %s does not have the %d bytes the manifest says: %w", key, m.Tables.Size, ErrChecksum))
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m.Tables.SHA256 {
		return nil, corrupt(fmt.Errorf("table list %s has sha256 %x, the manifest says %s: %w", key, sum, m.Tables.SHA256, ErrChecksum))
	}
	return data, nil
}

// ReadTables reads and checks backup m's table list, decrypting it with ids
// when the backup is encrypted. It returns nil and no error for a backup
// that has none (before format 3, or not recorded).
func ReadTables(ctx context.Context, b *drivers.Bucket, prefix string, m *Manifest, ids *Identities) (*TableList, error) {
	data, err := readTablesStored(ctx, b, prefix, m)
	if err != nil || data == nil {
		return nil, err
	}
	corrupt := func(err error) error { return &CorruptionError{ID: m.ID, Offset: -1, Err: err} }
	key := objectKey(prefix, m.ID, m.Tables.Object)
	if m.Encryption != nil {
		r, err := newDecrypter(m, bytes.NewReader(data), ids)
		if err != nil {
			return nil, fmt.Errorf("table list %s: %w", key, err)
		}
		if data, err = io.ReadAll(r); err != nil {
			return nil, corrupt(fmt.Errorf("table list %s does not decrypt (%v): %w", key, err, ErrChecksum))
		}
	}
	var l TableList
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, corrupt(fmt.Errorf("table list %s: %w", key, err))
	}
	if err := l.Check(m); err != nil {
		return nil, corrupt(err)
	}
	return &l, nil
}
